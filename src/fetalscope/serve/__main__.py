"""``python -m fetalscope.serve``: start the server without the CLI (used by the tests and benchmarks)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fetalscope.errors import FetalscopeError
from fetalscope.models.runtime import RUNTIMES
from fetalscope.serve.app import run_server
from fetalscope.serve.settings import DEFAULT_HOST, DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_PORT


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m fetalscope.serve", description=__doc__)
    p.add_argument("--host", default=DEFAULT_HOST)
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--model", default=None, help="plane model bundle name or folder")
    p.add_argument("--runtime", default=None, choices=RUNTIMES)
    p.add_argument("--detector", default=None, help="detector bundle name or folder ('none' for none)")
    p.add_argument("--brain-findings", default=None,
                   help="brain findings bundle name or folder ('none' for none)")
    p.add_argument("--token", default=None)
    p.add_argument("--save-uploads", type=Path, default=None)
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_BYTES / 2**20)
    p.add_argument("--max-pixels", type=int, default=None)
    p.add_argument("--timeout", type=float, default=None, help="request time limit in seconds")
    p.add_argument("--max-concurrent", type=int, default=None)
    p.add_argument("--examples", type=Path, default=None)
    p.add_argument("--eval-dir", type=Path, default=None)
    p.add_argument("--ablation-dir", type=Path, default=None)
    p.add_argument("--no-ui", action="store_true")
    a = p.parse_args(argv)
    try:
        _run(a)
    except FetalscopeError as exc:  # a taken port, a missing bundle: one line, no traceback
        print(f"error: {' '.join(str(exc).splitlines())}", file=sys.stderr)
        raise SystemExit(2) from None


def _run(a: argparse.Namespace) -> None:
    run_server(
        host=a.host, port=a.port, plane_model=a.model, token=a.token, save_uploads=a.save_uploads,
        runtime=a.runtime, detector=("" if a.detector == "none" else a.detector),
        brain_findings_model=("" if a.brain_findings == "none" else a.brain_findings),
        max_upload_bytes=int(a.max_upload_mb * 2**20), max_pixels=a.max_pixels, request_timeout_s=a.timeout,
        max_concurrent=a.max_concurrent, examples_dir=a.examples, eval_dir=a.eval_dir,
        ablation_dir=a.ablation_dir, ui=False if a.no_ui else None,
    )


if __name__ == "__main__":
    main()
