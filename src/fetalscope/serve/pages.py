"""The app's read-only pages, rendered from report files the code wrote (nothing typed in here).

- Model performance: ``report.md`` (+ the PNG plots it links) of an evaluation (``fetalscope evaluate``),
  found next to the plane model's bundle (or ``--eval-dir``).
- Ablation: ``ablation.md`` (+ PNGs) from ``fetalscope ablate`` (``--ablation-dir``; default ``runs/ablation``,
  else the small CPU study shipped in ``fetalscope/reports/ablation/``).
- Overview: ``overview.md`` beside this module (what the tool is, intended use and limits) followed by
  the model cards (``card.md``) of the loaded models, which carry data and weight provenance and citations.

Images linked from the Markdown are inlined as ``data:`` URIs, so pages need no file serving.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from fetalscope import config

OVERVIEW_MD = Path(__file__).resolve().parent / "overview.md"
IMAGE_LINK = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
LIST_AFTER_TEXT = re.compile(r"^(?![ \t]*(?:[-*+] |\d+\. )|[ \t]*$)([^\n]+)\n([ \t]*(?:[-*+] |\d+\. ))",
                             flags=re.MULTILINE)
FILE_LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(([^)\s:#/][^)\s:#]*)\)")  # [text](relative/file), not images or URLs


@dataclass
class Page:
    """A rendered page: ``markdown`` to show and the ``sources`` (files) it was made from."""

    markdown: str
    sources: list[Path] = field(default_factory=list)
    found: bool = True


def _inline_images(markdown: str, folder: Path) -> str:
    """Replace ``![alt](relative.png)`` links with ``data:`` URIs of the files (left as is when missing)."""

    def repl(match: re.Match[str]) -> str:
        alt, target = match.group(1), match.group(2)
        if target.startswith(("data:", "http://", "https://")):
            return match.group(0)
        path = (folder / target).resolve()
        if not path.is_file() or path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".svg"):
            return f"*(figure {alt or target} not found: {target})*"
        mime = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "svg": "image/svg+xml"}[
            path.suffix.lower().lstrip(".")]
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        return f"![{alt}](data:{mime};base64,{encoded})"

    text = IMAGE_LINK.sub(repl, markdown)
    # links to other files of the report (plot data) cannot be followed from the page: name them instead
    return FILE_LINK.sub(lambda m: f"`{m.group(2)}` (in `{folder}`)", text)


def _extra_pngs(folder: Path, markdown: str) -> str:
    """Markdown image links for PNGs in ``folder`` that the Markdown does not already show."""
    shown = set(IMAGE_LINK.findall(markdown))
    linked = {Path(t).name for _, t in shown}
    extra = [p for p in sorted(folder.glob("*.png")) if p.name not in linked]
    return "\n".join(f"![{p.stem}]({p.name})" for p in extra)


def find_eval_report(bundle_path: Path | None, eval_dir: Path | None = None) -> Path | None:
    """Folder holding the evaluation ``report.md``/``report.json``: ``eval_dir`` if given, else the bundle
    folder or its ``evaluation/``/``report/`` subfolder."""
    candidates = [eval_dir] if eval_dir is not None else []
    if bundle_path is not None:
        candidates += [bundle_path, bundle_path / "evaluation", bundle_path / "report", bundle_path / "eval"]
    for folder in candidates:
        if folder is not None and ((folder / "report.md").is_file() or (folder / "report.json").is_file()):
            return folder
    return None


def performance_page(bundle_path: Path | None, eval_dir: Path | None = None) -> Page:
    folder = find_eval_report(bundle_path, eval_dir)
    if folder is None:
        where = eval_dir or bundle_path
        return Page(f"No evaluation report was found in `{where}`.\n\nRun `fetalscope evaluate --model MODEL "
                    "--data DATA --output DIR` and start the server with `--eval-dir DIR` (or set "
                    "`FETALSCOPE_EVAL_DIR`).", [], found=False)
    md_path = folder / "report.md"
    sources = [p for p in (md_path, folder / "report.json") if p.is_file()]
    if md_path.is_file():
        text = md_path.read_text(encoding="utf-8")
    else:  # a report.json without its Markdown: show its headline fields as they are
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        text = "# Evaluation report\n\n```json\n" + json.dumps(report, indent=2)[:20000] + "\n```\n"
    extra = _extra_pngs(folder, text)
    if extra:
        text += "\n\n## Other figures\n\n" + extra
    header = f"*Rendered from `{md_path if md_path.is_file() else folder / 'report.json'}`.*\n\n"
    return Page(header + _inline_images(text, folder), sources)


def shipped_ablation_dir() -> Path:
    """The ablation study shipped with the package (``scripts/ablation_study.py`` writes it)."""
    return config.bundled_reports_dir() / "ablation"


def default_ablation_dirs() -> list[Path]:
    """Where the Ablation page looks without ``--ablation-dir``: a user's own ``runs/ablation`` (in the working
    folder, then the checkout) first, then the study shipped with the package."""
    found = [Path.cwd() / "runs" / "ablation", config.REPO_ROOT / "runs" / "ablation", shipped_ablation_dir()]
    return list({str(f.resolve()): f for f in found}.values())  # once each, when the server runs in the repo


def ablation_page(ablation_dir: Path | None = None, bundle_path: Path | None = None) -> Page:
    candidates = [ablation_dir] if ablation_dir is not None else default_ablation_dirs()
    if bundle_path is not None and ablation_dir is None:
        candidates.append(bundle_path / "ablation")
    for folder in candidates:
        md_path = folder / "ablation.md"
        if md_path.is_file():
            text = md_path.read_text(encoding="utf-8")
            extra = _extra_pngs(folder, text)
            if extra:
                text += "\n\n" + extra
            return Page(f"*Rendered from `{md_path}`.*\n\n" + _inline_images(text, folder),
                        [md_path] + ([folder / "ablation.json"] if (folder / "ablation.json").is_file() else []))
    looked = ", ".join(f"`{c}`" for c in candidates)
    return Page(f"No ablation table was found (looked in {looked}).\n\nRun `fetalscope ablate --data DATA "
                "--variants baseline,no_se,frozen_only,no_augment --out DIR` and start the server with "
                "`--ablation-dir DIR` (or set `FETALSCOPE_ABLATION_DIR`).", [], found=False)


def overview_page(card_folders: list[Path]) -> Page:
    """``overview.md`` then each model's ``card.md`` (provenance, licences, citations)."""
    parts = [OVERVIEW_MD.read_text(encoding="utf-8")]
    sources = [OVERVIEW_MD]
    for folder in card_folders:
        card_md = folder / "card.md"
        if card_md.is_file():
            body = card_md.read_text(encoding="utf-8")
            body = re.sub(r"^# ", "### ", body, flags=re.MULTILINE)
            body = re.sub(r"^## ", "#### ", body, flags=re.MULTILINE)
            body = LIST_AFTER_TEXT.sub("\\1\n\n\\2", body)  # a list right under a paragraph is its own block
            parts.append(f"---\n\n*Model card rendered from `{card_md}`:*\n\n{_inline_images(body, folder)}")
            sources.append(card_md)
    return Page("\n\n".join(parts), sources)
