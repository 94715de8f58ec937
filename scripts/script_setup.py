"""The ``--shared`` option of the bundle scripts (build_sononet_bundle.py, quantize_bundle.py): the shared
folder that fetalscope reads data and weights from (``FETALSCOPE_SHARED``, see :mod:`fetalscope.config`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_shared_option(parser: argparse.ArgumentParser, holds: str = "data/") -> None:
    """``--shared DIR``: the shared folder holding ``holds`` (applied by :func:`apply_shared_option`)."""
    parser.add_argument("--shared", type=Path, default=None,
                        help=f"shared folder with {holds} (default: FETALSCOPE_SHARED or ../shared)")


def apply_shared_option(args: argparse.Namespace) -> None:
    """Set ``FETALSCOPE_SHARED`` from ``--shared`` when it was given (fetalscope.config reads it)."""
    if args.shared is not None:
        os.environ["FETALSCOPE_SHARED"] = str(args.shared.resolve())
