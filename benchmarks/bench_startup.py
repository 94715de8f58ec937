"""Seconds a one-image command spends before and around its work, each step in a fresh interpreter (median of
``--repeats``), with the ratios measured in this run
(``python benchmarks/bench_startup.py [--repeats 3] [--out F.json] [--markdown F.md [--readme README.md]]``):

- importing the pipeline session, as every command does, against the same plus what an eager
  ``fetalscope.explain`` and model registry used to import with it (the explanation modules, pytorch-grad-cam and
  timm);
- making the head and CTR measurers as a CPU measurement does (ONNX Runtime; the PyTorch networks are not built)
  against also building the ensembles' PyTorch networks, as loading a bundle used to;
- the whole ``fetalscope measure`` and ``fetalscope predict`` commands on the bundled example image.

Numbers depend on the machine and its load: run it on an idle one; the load average before and after is printed."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: benchmarks.*
from benchmarks.readme_block import replace_block  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "src" / "fetalscope" / "serve" / "examples" / "phantom_fetal_brain.png"

TIMED = """
import time
t0 = time.perf_counter()
{body}
print("SECONDS", time.perf_counter() - t0)
"""
STEPS = {
    "import session": "import fetalscope.pipeline.session",
    "import session + eager explain and timm": "import fetalscope.pipeline.session\n"
                                                 "import fetalscope.explain.evaluation, fetalscope.explain.cam\n"
                                                 "import fetalscope.explain.perturbation, timm",
    "measurers (ONNX, networks not built)": "from fetalscope.biometry.measure import Measurer\n"
                                            "m = [Measurer(w, runtime='onnx') for w in ('head', 'cardiothoracic')]",
    "measurers + PyTorch networks built": "from fetalscope.biometry.measure import Measurer\n"
                                          "m = [Measurer(w, runtime='onnx') for w in ('head', 'cardiothoracic')]\n"
                                          "nets = [x.bundle.model for x in m]",
}
COMMANDS = {
    "fetalscope measure (one image)": ["measure", str(EXAMPLE), "--pixel-size", "0.1", "--json"],
    "fetalscope predict (one image)": ["predict", str(EXAMPLE)],
}
RATIOS = (("import session + eager explain and timm", "import session"),
          ("measurers + PyTorch networks built", "measurers (ONNX, networks not built)"))


def timed_step(body: str) -> float:
    """Seconds ``body`` takes in a fresh interpreter (its own clock, so interpreter start-up is not counted)."""
    proc = subprocess.run([sys.executable, "-c", TIMED.format(body=body)], capture_output=True, text=True,
                          check=True)
    return float(proc.stdout.split("SECONDS")[-1])


def timed_command(args: list[str]) -> float:
    """Wall seconds of ``python -m fetalscope ARGS`` (interpreter start-up included, as a user waits for it)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fetalscope", *args], capture_output=True, check=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--markdown", type=Path, default=None, help="write the results as a Markdown table here")
    parser.add_argument("--readme", type=Path, default=None,
                        help="also put that table into this file between '<!-- bench:NAME -->' and "
                             "'<!-- /bench:NAME -->' (NAME: the --markdown file's stem)")
    args = parser.parse_args()
    load_before = round(os.getloadavg()[0], 2)
    seconds: dict[str, float] = {}
    for name, body in STEPS.items():
        seconds[name] = statistics.median(timed_step(body) for _ in range(args.repeats))
    for name, cli in COMMANDS.items():
        seconds[name] = statistics.median(timed_command(cli) for _ in range(args.repeats))
    ratios = {f"{slow} / {fast}": round(seconds[slow] / seconds[fast], 2) for slow, fast in RATIOS}
    out = {"python": sys.version.split()[0], "repeats": args.repeats, "cpu_count": os.cpu_count(),
           "load_average_1min": [load_before, round(os.getloadavg()[0], 2)],
           "seconds": {k: round(v, 3) for k, v in seconds.items()}, "ratios": ratios}
    table = markdown_table(out)
    print(table, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table, encoding="utf-8")
        if args.readme:
            replace_block(args.readme, f"bench:{args.markdown.stem}", table)


def markdown_table(out: dict) -> str:
    """The results of one run as a Markdown table, the ratios and the machine's load under it."""
    lines = [f"| step (median of {out['repeats']}, a fresh interpreter each) | seconds |", "| --- | --- |"]
    lines += [f"| {name} | {value:.2f} |" for name, value in out["seconds"].items()]
    lines += ["", *(f"Ratio {name}: {value:.2f}x." for name, value in out["ratios"].items()),
              f"Python {out['python']}, {out['cpu_count']} CPUs, load average (1 min) before / after "
              f"{out['load_average_1min'][0]} / {out['load_average_1min'][1]}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
