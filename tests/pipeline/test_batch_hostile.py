"""`fetalscope batch` over a folder of real images and every kind of hostile file an archive holds: a zero-byte file,
a truncated PNG, text named .png, a PNG whose header claims 100000 x 100000 pixels (a decompression bomb), a DICOM
without pixels, a folder link back to its parent (a loop), a pair of file links that loop, a file nobody may read
and a folder nobody may search. Each is exactly one error row that says what is wrong, the real images are ok rows
with the session's answers, and ``--resume`` adds nothing and takes under half the time. The run is a real
process; as root it runs without the capabilities that let root read any file, so the unreadable file is
unreadable."""

from __future__ import annotations

import ctypes
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file

import fetalscope
from fetalscope.pipeline.session import Session

PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2
SAYS = {"empty.png": "file is empty (0 bytes)", "truncated.png": "truncated",
        "text.png": "not a readable image", "bomb.png": "decompression bomb",
        "nopixels.dcm": "has no pixel data", "sub/loop": "a folder that contains it (a loop); not followed",
        "ring1.png": "a symbolic link that loops", "ring2.png": "a symbolic link that loops",
        "locked.png": "Permission denied", "shut": "a folder that cannot be searched (Permission denied)"}


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png() -> bytes:
    """A valid PNG signature and header for a 100000 x 100000 grey image, with a few bytes of data."""
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + png_chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def hostile(example_pngs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real images and the hostile files."""
    folder = tmp_path_factory.mktemp("hostile")
    (folder / "sub").mkdir()
    good = [p for p in example_pngs if "brain" in p.name or "thorax" in p.name]
    for src in good:
        shutil.copy(src, folder / src.name)
    (folder / "empty.png").write_bytes(b"")
    (folder / "truncated.png").write_bytes(good[0].read_bytes()[:400])
    (folder / "text.png").write_text("these are not the pixels you are looking for\n")
    (folder / "bomb.png").write_bytes(bomb_png())
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.PixelData
    ds.save_as(folder / "nopixels.dcm")
    (folder / "sub" / "loop").symlink_to("..", target_is_directory=True)
    (folder / "ring1.png").symlink_to("ring2.png")
    (folder / "ring2.png").symlink_to("ring1.png")
    shutil.copy(good[1], folder / "locked.png")
    (folder / "locked.png").chmod(0)
    (folder / "shut").mkdir()
    shutil.copy(good[0], folder / "shut" / "inside.png")
    (folder / "shut").chmod(0)
    return folder


def _without_root_reading() -> None:
    """In the child, before exec: drop the capabilities that let root read a file whatever its mode."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_batch(*args: object) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "PYTHONPATH": str(Path(fetalscope.__file__).parents[1])}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "fetalscope", "batch", *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=env,
                          preexec_fn=_without_root_reading if os.geteuid() == 0 else None)
    return proc, time.perf_counter() - t0


def test_each_hostile_file_is_one_error_row_and_resume_adds_nothing_in_under_half_the_time(hostile):
    out = hostile.parent / "hostile.parquet"
    first, first_seconds = run_batch(hostile, "-o", out)
    assert first.returncode == 0, first.stderr[-3000:]
    rows = pd.read_parquet(out)
    by_name = {str(Path(p).relative_to(hostile)): r for p, r in zip(rows["path"], rows.to_dict("records"),
                                                                     strict=True)}
    good = sorted(p.name for p in hostile.glob("phantom_*.png"))
    assert sorted(by_name) == sorted([*good, *SAYS]) and rows["path"].is_unique  # one row per file, no more
    for name, says in SAYS.items():
        row = by_name[name]
        assert row["status"] == "error" and row["error"].startswith(str(hostile / name)), (name, row["error"])
        assert says in row["error"], (name, row["error"])
    session = Session()
    for name in good:
        row = by_name[name]
        assert row["status"] == "ok", row["error"]
        expected = session.analyse(hostile / name).to_row()
        assert row["plane"] == expected["plane"]
        assert row["plane_probability"] == pytest.approx(expected["plane_probability"], abs=1e-6)
    assert f"{len(good)} ok, {len(SAYS)} error" in first.stderr
    resumed, resume_seconds = run_batch(hostile, "-o", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"{len(good)} skipped (already done)" in resumed.stderr and "0 ok" in resumed.stderr
    after = pd.read_parquet(out)
    keep = ["path", "sha256", "status", "error", "plane", "plane_probability"]
    pd.testing.assert_frame_equal(after[keep], rows[keep])  # nothing new: the same rows, the errors retried
    ok = rows["status"] == "ok"
    assert (after[ok]["time_row_ms"] == rows[ok]["time_row_ms"]).all()  # the ok rows are the first run's
    assert resume_seconds < first_seconds / 2, (resume_seconds, first_seconds)
