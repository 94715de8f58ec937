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


@pytest.fixture(scope="session")
def phantom_fpdb(tmp_path_factory) -> Path:
    """A synthetic FETAL_PLANES_DB-layout folder (CSV + Images/), 36 patients x 6 images, 96 px."""
    from fetalscope.data.phantoms import write_phantom_dataset

    root = tmp_path_factory.mktemp("phantom_fpdb")
    return write_phantom_dataset(root, n_patients=36, images_per_patient=6, size=(96, 96), seed=0)


@pytest.fixture(scope="session")
def fuzz_seeds() -> dict[str, bytes]:
    """The fuzzer's seed files (``tests/fuzzing.py``), every format, made from one real image when
    ../shared is present (else a synthetic phantom)."""
    import fuzzing

    return fuzzing.make_seeds(fuzzing.source_image()[0])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the ``nightly`` tests (the long fuzz runs) out unless the ``-m`` expression names them
    (``-m nightly``), whatever else ``-m`` selects (``-m "not browser"`` still skips them)."""
    if "nightly" in (config.getoption("markexpr") or ""):
        return
    kept = [item for item in items if item.get_closest_marker("nightly") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
