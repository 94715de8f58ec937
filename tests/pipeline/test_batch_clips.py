"""`fetalscope batch` over a folder that mixes stills and cine loops (a small MP4 written from the bundled examples
and pydicom's multi-frame ``ybr_color`` DICOM): one row per clip with the video pipeline's answers, per-frame
rows on request, and every file read from disk once; a multi-page TIFF (Pillow, from real frames) is a clip too,
and the detect task adds what the detector finds on each plane's best frame."""

from __future__ import annotations

import builtins
import hashlib
import io
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from typer.testing import CliRunner

from fetalscope import config
from fetalscope.cli import app
from fetalscope.imaging.loader import load_image
from fetalscope.pipeline.batch.manifest import Item
from fetalscope.pipeline.batch.rows import RowRunner, RunConfig
from fetalscope.pipeline.batch.store import Store
from fetalscope.pipeline.session import Session
from fetalscope.pipeline.video import analyse_video


def write_mp4(path: Path, stills: list[tuple[Path, int]], size: tuple[int, int] = (160, 128)) -> Path:
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, size)
    assert writer.isOpened()
    for still, count in stills:
        base = cv2.resize(load_image(still).pixels, size).astype(np.int16)
        for _ in range(count):
            noisy = np.clip(base + rng.integers(-6, 7, base.shape), 0, 255).astype(np.uint8)
            writer.write(cv2.cvtColor(noisy, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory, example_pngs: list[Path]) -> Path:
    root = tmp_path_factory.mktemp("mixed")
    by_name = {p.name: p for p in example_pngs}
    shutil.copy(by_name["phantom_fetal_brain.png"], root / "still.png")
    shutil.copy(get_testdata_file("examples_ybr_color.dcm"), root / "cine.dcm")
    write_mp4(root / "sweep.mp4", [(by_name["phantom_other.png"], 5), (by_name["phantom_fetal_thorax.png"], 10),
                                   (by_name["phantom_other.png"], 5)])
    return root


def test_clips_give_one_row_each_with_the_video_pipelines_answers(mixed, tmp_path):
    out = tmp_path / "mixed.parquet"
    result = CliRunner().invoke(app, ["batch", str(mixed), "-o", str(out), "--frame-rows"])
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(out).set_index("path")
    assert sorted(Path(p).name for p in rows.index) == ["cine.dcm", "still.png", "sweep.mp4"]
    assert (rows["status"] == "ok").all(), rows["error"].tolist()
    kinds = {Path(p).name: k for p, k in rows["kind"].items()}
    assert kinds == {"cine.dcm": "clip", "still.png": "image", "sweep.mp4": "clip"}
    frames = pd.read_parquet(out.with_name("mixed.frames.parquet"))
    session = Session(detector=None)
    for name in ("sweep.mp4", "cine.dcm"):
        path = str((mixed / name).resolve())
        row = rows.loc[path]
        assert row["sha256"] == hashlib.sha256(Path(path).read_bytes()).hexdigest()
        expected = analyse_video(session, path, measure=False)
        summary = expected.to_dict()
        assert row["frames"] == summary["frames"] == summary["frames_source"]
        assert row["segments"] == len(summary["segments"])
        planes = row["segment_planes"] if isinstance(row["segment_planes"], str) else ""  # a null when none
        assert planes == ";".join(s["plane"] for s in summary["segments"])
        for plane, best in summary["best_frames"].items():
            assert row[f"best_frame_{plane}"] == best["frame"]
            assert row[f"best_p_{plane}"] == pytest.approx(best["probability"], abs=1e-6)
        mine = frames[frames["path"] == path].sort_values("frame")
        want = pd.DataFrame(expected.rows())
        assert list(mine["frame"]) == list(want["frame"])
        np.testing.assert_allclose(mine["plane_probability"], want["plane_probability"], atol=1e-6)
        assert list(mine["plane"]) == list(want["plane"])
    sweep = rows.loc[str((mixed / "sweep.mp4").resolve())]
    assert sweep["plane"] == "Fetal thorax" and 5 <= sweep["best_frame_Fetal thorax"] <= 14  # the thorax stretch
    still = rows.loc[str((mixed / "still.png").resolve())]
    assert still["plane"] == session.analyse(mixed / "still.png").plane and pd.isna(still["frames"])
    assert set(frames["path"]) == {str((mixed / n).resolve()) for n in ("sweep.mp4", "cine.dcm")}


def test_each_file_is_read_from_disk_once(mixed, monkeypatch):
    runner = RowRunner(RunConfig())
    opened: list[str] = []
    real_open = builtins.open

    def counting_open(file, *args, **kwargs):
        if str(file).startswith(str(mixed)):
            opened.append(Path(file).name)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(io, "open", counting_open)  # Path.read_bytes
    monkeypatch.setattr("builtins.open", counting_open)  # PIL, pydicom and others given a path
    for name in ("still.png", "sweep.mp4", "cine.dcm"):
        row = runner.row(Item(str(mixed / name)))
        assert row["status"] == "ok", row["error"]
    assert opened == ["still.png", "sweep.mp4", "cine.dcm"]  # hashed and decoded from the one read


def test_frame_rows_of_a_clip_analysed_again_replace_the_old_ones(tmp_path):
    store = Store(tmp_path / "f.frames.parquet", key=("path", "frame"))
    store.write_part([{"path": "a.mp4", "frame": i, "plane": "Other"} for i in range(0, 6, 2)]
                     + [{"path": "b.mp4", "frame": 0, "plane": "Other"}])
    assert store.merge() == 4
    store.write_part([{"path": "a.mp4", "frame": i, "plane": "Fetal thorax"} for i in range(3)])  # stride 1 now
    assert store.merge() == 4
    merged = pd.read_parquet(store.output)
    assert list(zip(merged["path"], merged["frame"], strict=True)) == [("a.mp4", 0), ("a.mp4", 1), ("a.mp4", 2),
                                                                       ("b.mp4", 0)]
    assert list(merged["plane"]) == ["Fetal thorax"] * 3 + ["Other"]


def real_head() -> Path:
    """A real head image (HC18) on which the brain-structure detector finds structures; present with ../shared."""
    return config.shared_data_dir() / "hc18" / "training_set" / "002_HC.png"


def brain_frame_source(example_pngs: list[Path]) -> Path:
    """The real head image when ../shared is present, else the bundled brain example."""
    return real_head() if real_head().is_file() else next(p for p in example_pngs if "brain" in p.name)


@pytest.fixture(scope="module")
def tiffs(tmp_path_factory: pytest.TempPathFactory, example_pngs: list[Path]) -> Path:
    """A multi-page TIFF written by Pillow from real frames (8 of a head image, then 6 of the 'other' example) and
    a one-page TIFF (a still)."""
    root = tmp_path_factory.mktemp("tiffs")
    other = next(p for p in example_pngs if "other" in p.name)
    size = (400, 272)
    pages = [Image.fromarray(load_image(src).pixels).resize(size) for src in [brain_frame_source(example_pngs)] * 8
             + [other] * 6]
    pages[0].save(root / "loop.tif", save_all=True, append_images=pages[1:])
    pages[0].save(root / "still.tif")
    return root


def test_a_multi_page_tiff_is_a_clip_and_detect_runs_on_each_planes_best_frame(tiffs, tmp_path):
    out = tmp_path / "tiffs.parquet"
    result = CliRunner().invoke(app, ["batch", str(tiffs), "-o", str(out), "--tasks", "detect", "--frame-rows"])
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(out).set_index("path")
    assert (rows["status"] == "ok").all(), rows["error"].tolist()
    loop, still = rows.loc[str(tiffs / "loop.tif")], rows.loc[str(tiffs / "still.tif")]
    assert loop["kind"] == "clip" and still["kind"] == "image"  # every page, not silently the first
    session = Session(detector="brain-structures")
    expected = analyse_video(session, tiffs / "loop.tif", measure=False)
    summary = expected.to_dict()
    assert loop["frames"] == summary["frames_source"] == 14 and loop["segments"] == len(summary["segments"])
    frames = pd.read_parquet(out.with_name("tiffs.frames.parquet"))
    assert list(frames["frame"]) == list(range(14)) and set(frames["path"]) == {str(tiffs / "loop.tif")}
    assert summary["best_frames"], "no plane segment in the clip"
    found = 0
    for plane, best in summary["best_frames"].items():
        assert loop[f"best_frame_{plane}"] == best["frame"]
        frame_png = tmp_path / f"best_{best['frame']}.png"
        Image.fromarray(expected.best_images[plane]).save(frame_png)
        alone = session.detect(frame_png)["boxes"]  # the detector on that frame alone, from a file
        assert loop[f"detections_{plane}"] == len(alone), plane
        assert text(loop[f"detected_{plane}"]) == ";".join(b["label"] for b in alone), plane
        found += len(alone)
    if real_head().is_file():
        assert found > 0  # a real head: the columns carry structures, not only zeros
    assert loop["time_detect_ms"] > 0
    analysis = session.analyse(tiffs / "still.tif", detect="auto").to_row()
    assert still["plane"] == analysis["plane"] and pd.isna(still["frames"])


def text(value: object) -> str:
    return value if isinstance(value, str) else ""


def test_clip_row_carries_each_measurements_interval():
    """The clip row's measurement columns are the still rows' ones, the calibrated intervals included."""
    from types import SimpleNamespace

    from fetalscope.pipeline.batch.clips import clip_columns

    summary = {"segments": [{"plane": "Fetal brain", "frames_processed": 5}],
               "best_frames": {"Fetal brain": {"frame": 3, "time_s": 0.1, "probability": 0.9}},
               "frames": 10, "frames_source": 10, "fps_source": 30.0, "duration_s": 0.33, "stride": 1,
               "measurements": {"head": {"frame": 3, "hc_mm": 170.2, "bpd_mm": 45.0, "ofd_mm": 60.0, "ga_weeks": 19.6,
                                         "hc_interval_mm": [166.9, 173.5]},
                                "cardiothoracic": {"frame": 7, "ctr": {"circumference": 0.51},
                                                   "ctr_interval": [0.46, 0.56]}},
               "measurements_skipped": {}, "warnings": [], "timings_ms": {"total": 12.0, "frames_per_s": 800.0}}
    row = clip_columns(SimpleNamespace(to_dict=lambda: summary))
    assert (row["hc_mm"], row["hc_interval_low_mm"], row["hc_interval_high_mm"]) == (170.2, 166.9, 173.5)
    assert (row["ctr"], row["ctr_interval_low"], row["ctr_interval_high"]) == (0.51, 0.46, 0.56)
