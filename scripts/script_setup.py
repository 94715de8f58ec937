"""What the SonoNet bundle scripts (build_sononet_bundle.py, quantize_bundle.py) share: the repository
root, loading a file as a module (the inference benchmark, a sibling script) and the ``--shared`` option
that points fetalscope at the shared folder (``FETALSCOPE_SHARED``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"


def load_module(path: Path, name: str) -> ModuleType:
    """The Python file ``path`` executed as a fresh module called ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_bench_module() -> ModuleType:
    """benchmarks/bench_inference.py as a module (its ``main(argv)`` measures a bundle's latency)."""
    return load_module(REPO / "benchmarks" / "bench_inference.py", "bench_inference")


def add_shared_option(parser: argparse.ArgumentParser, holds: str = "data/") -> None:
    """``--shared DIR``: the shared folder holding ``holds`` (applied by :func:`apply_shared_option`)."""
    parser.add_argument("--shared", type=Path, default=None,
                        help=f"shared folder with {holds} (default: FETALSCOPE_SHARED or ../shared)")


def apply_shared_option(args: argparse.Namespace) -> None:
    """Set ``FETALSCOPE_SHARED`` from ``--shared`` when it was given (fetalscope.config reads it)."""
    if args.shared is not None:
        os.environ["FETALSCOPE_SHARED"] = str(args.shared.resolve())
