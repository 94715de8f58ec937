"""Rebuild the bundled fonts in ``src/fetalscope/assets/fonts/`` from DejaVu (Debian ``fonts-dejavu-core``).

The app and the PDF report use one font family, so a page and a printed report look alike and render the
same characters offline (µ, ±, ≥, ⚠ ...). This subsets DejaVu Sans (Book and Bold) and DejaVu Sans Mono
to the scripts and symbols fetalscope writes (Latin, Greek, punctuation, arrows, mathematical operators,
shapes, the warning sign), keeping kerning, and writes each as TrueType (embedded in PDFs) and WOFF2
(served to browsers). The DejaVu licence (Bitstream Vera terms + public-domain changes) travels as
``LICENSE-DejaVu.txt``. Run: ``python scripts/build_fonts.py [--source /usr/share/fonts/truetype/dejavu]``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

OUT = Path(__file__).resolve().parents[1] / "src" / "fetalscope" / "assets" / "fonts"
FACES = {  # source file -> bundled name
    "DejaVuSans.ttf": "DejaVuSans-Regular",
    "DejaVuSans-Bold.ttf": "DejaVuSans-Bold",
    "DejaVuSansMono.ttf": "DejaVuSansMono-Regular",
}
UNICODE_RANGES = [
    (0x0020, 0x007E), (0x00A0, 0x017F),  # Basic Latin, Latin-1 (µ ± × ° ·), Latin Extended-A
    (0x0192, 0x0192), (0x0218, 0x021B), (0x02C6, 0x02DD),  # florin, comma-below letters, spacing modifiers
    (0x0391, 0x03C9),  # Greek letters
    (0x2000, 0x206F), (0x2070, 0x209F), (0x20AC, 0x20AC),  # punctuation (– — “ ” • …), super/subscripts, euro
    (0x2100, 0x214F), (0x2190, 0x21FF), (0x2200, 0x22FF),  # letterlike, arrows, mathematical operators (≥ ≤ ≈)
    (0x25A0, 0x25FF), (0x26A0, 0x26A0),  # geometric shapes, the warning sign ⚠
    (0x2713, 0x2718), (0xFFFD, 0xFFFD),  # check and cross marks, replacement character
]


def build(source: Path, out: Path = OUT) -> list[Path]:
    """Subset every face of ``source`` into ``out`` as .ttf and .woff2; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    codepoints = [c for lo, hi in UNICODE_RANGES for c in range(lo, hi + 1)]
    written = []
    for src_name, name in FACES.items():
        options = subset.Options()
        options.layout_features = ["kern", "liga", "mark", "mkmk", "locl"]
        options.name_IDs = ["*"]  # keep the copyright and licence records
        options.notdef_outline = True
        options.hinting = False  # screens and PDF viewers hint themselves; halves the size
        font = TTFont(source / src_name)
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=codepoints)
        subsetter.subset(font)
        for flavor, ext in ((None, "ttf"), ("woff2", "woff2")):
            font.flavor = flavor
            path = out / f"{name}.{ext}"
            font.save(path)
            written.append(path)
    licence = Path("/usr/share/doc/fonts-dejavu-core/copyright")
    if licence.is_file():
        shutil.copyfile(licence, out / "LICENSE-DejaVu.txt")
        written.append(out / "LICENSE-DejaVu.txt")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("/usr/share/fonts/truetype/dejavu"),
                        help="folder holding DejaVuSans.ttf, DejaVuSans-Bold.ttf and DejaVuSansMono.ttf")
    args = parser.parse_args()
    for path in build(args.source):
        print(f"{path.stat().st_size / 1024:7.1f} KiB  {path.relative_to(OUT.parents[3])}")


if __name__ == "__main__":
    main()
