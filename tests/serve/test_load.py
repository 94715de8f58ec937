"""A bounded load test over loopback: 50 concurrent /v1/predict requests complete with 0 errors.

The load generator is benchmark tooling (``benchmarks/loadtest.py``, also used by ``benchmarks/bench_serve.py``);
it is imported as ``benchmarks.loadtest`` with the repository root on the path."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fetalscope.errors import BadInputError

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

from benchmarks.loadtest import run_load  # noqa: E402


def test_fifty_concurrent_predicts_without_errors(server, phantom_png, artifacts_dir):
    result = run_load(server.url, ("brain.png", phantom_png), n=50, concurrency=50, timeout_s=120)
    (artifacts_dir / "serve-load.json").write_text(json.dumps(result.to_dict(), indent=2))
    assert result.errors == 0, result.error_samples
    assert result.ok == 50 and result.status_counts == {"200": 50}
    assert 0 < result.p50_ms <= result.p95_ms <= result.max_ms
    assert server.process.poll() is None


def test_load_test_refuses_other_hosts(phantom_png):
    with pytest.raises(BadInputError):
        run_load("http://example.org", ("a.png", phantom_png), n=1, concurrency=1)
