"""Fixtures of the batch tests: a small archive of real files (the bundled example images, a sub-folder, real
shared images when ../shared is present) with hostile files among them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fetalscope import config

HOSTILE = {"corrupt.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR truncated", "empty.png": b"",
           "text.png": b"these are not the pixels you are looking for\n"}
SHARED_IMAGES = ("hc18/training_set/000_HC.png", "hc18/training_set/010_HC.png")


def example_images() -> list[Path]:
    from fetalscope.serve.examples import BUNDLED_DIR

    return sorted(BUNDLED_DIR.glob("*.png"))


@pytest.fixture(scope="session")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example images, one again in a sub-folder, up to two real HC18 images (linked, not copied) and the
    hostile files (a truncated PNG, an empty file, text named .png)."""
    root = tmp_path_factory.mktemp("archive")
    for f in example_images():
        shutil.copy(f, root / f.name)
    (root / "sub" / "deeper").mkdir(parents=True)
    shutil.copy(example_images()[1], root / "sub" / "deeper" / "again.png")
    for rel in SHARED_IMAGES:
        real = config.shared_data_dir() / rel
        if real.is_file():
            (root / "sub" / real.name).symlink_to(real)
    for name, data in HOSTILE.items():
        (root / name).write_bytes(data)
    return root


@pytest.fixture(scope="session")
def archive_files(archive: Path) -> list[Path]:
    """Every file of the archive, as a batch row names it (resolved)."""
    return sorted({p.resolve() for p in archive.rglob("*.png")})


@pytest.fixture(scope="session")
def example_pngs() -> list[Path]:
    return example_images()
