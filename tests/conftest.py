"""Shared fixtures. Tests that need ../shared (real data or weights) skip cleanly when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("FETALSCOPE_CACHE", str(Path(__file__).resolve().parent.parent / ".cache" / "tests"))

from fetalscope import config  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = config.shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real data not present at {path}")
    return path


@pytest.fixture(scope="session")
def shared_weights() -> Path:
    path = config.shared_weights_dir()
    if not path.is_dir():
        pytest.skip(f"pretrained weights not present at {path}")
    return path


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
