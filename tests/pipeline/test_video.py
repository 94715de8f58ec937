"""A clip written by OpenCV from the bundled example images (known segments) through the bundled plane model:
segments and best frames in the right places, no plane claimed that is not shown, the frames.csv rows; and a
sweep of real brain and thorax stills (shared data) measured on its best frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fetalscope.imaging.loader import load_image
from fetalscope.pipeline.session import Session
from fetalscope.pipeline.video import analyse_video
from fetalscope.pipeline.video_segments import SegmentRules, segments, smooth

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "fetalscope" / "serve" / "examples"
SIZE = (320, 224)


def write_clip(path: Path, stills: list[tuple[np.ndarray, int]], fourcc: str = "MJPG", fps: float = 10.0) -> Path:
    """Each still shown for its number of frames, with a little speckle so frames differ."""
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, SIZE)
    assert writer.isOpened()
    for rgb, count in stills:
        base = cv2.resize(rgb, SIZE).astype(np.int16)
        for _ in range(count):
            noisy = np.clip(base + rng.integers(-6, 7, base.shape), 0, 255).astype(np.uint8)
            writer.write(cv2.cvtColor(noisy, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture(scope="module")
def session() -> Session:
    return Session(brain_plane_model=None, brain_findings_model=None, detector=None)


def test_hysteresis_enters_and_leaves_once() -> None:
    p = np.array([0.1, 0.7, 0.5, 0.65, 0.45, 0.7, 0.2, 0.1, 0.9, 0.1])
    probs = np.stack([p, 1 - p], axis=1)
    found = segments(probs, ["Fetal brain", "Other"], SegmentRules(window=1, enter=0.6, leave=0.4, min_frames=2))
    assert [(s.plane, s.start, s.end) for s in found] == [("Fetal brain", 1, 5)]  # 0.9 alone is flicker
    assert smooth(probs, 3)[0, 0] == pytest.approx((0.1 + 0.7) / 2)


def test_clip_of_bundled_examples_segments_and_best_frame(tmp_path: Path, session: Session) -> None:
    other = load_image(EXAMPLES / "phantom_other.png").pixels
    thorax = load_image(EXAMPLES / "phantom_fetal_thorax.png").pixels
    clip = write_clip(tmp_path / "clip.avi", [(other, 10), (thorax, 12), (other, 10)])
    result = analyse_video(session, clip, measure=False)
    summary = result.to_dict()
    assert summary["frames"] == 32 and summary["fps_source"] == 10.0 and summary["fps_processed"] == 10.0
    assert [s["plane"] for s in summary["segments"]] == ["Fetal thorax"]  # nothing claimed that is not shown
    seg = summary["segments"][0]
    edge = SegmentRules().window // 2  # a centred moving average moves an edge by at most half its window
    assert abs(seg["start_frame"] - 10) <= edge and abs(seg["end_frame"] - 21) <= edge
    best = summary["best_frames"]["Fetal thorax"]
    assert 10 <= best["frame"] <= 21 and best["time_s"] == pytest.approx(best["frame"] / 10)
    assert best["probability"] == pytest.approx(result.smoothed[best["frame"], result.classes.index("Fetal thorax")])
    assert set(summary["best_frames"]) == {"Fetal thorax"}
    assert np.abs(result.best_images["Fetal thorax"].astype(int) - cv2.resize(thorax, SIZE)).mean() < 8
    rows = result.rows()
    assert list(rows[0])[:4] == ["frame", "time_s", "plane", "plane_probability"]
    assert {f"p_{c}" for c in result.classes} <= set(rows[0])
    assert all(abs(sum(r[f"p_{c}"] for c in result.classes) - 1) < 1e-4 for r in rows)
    # stride and budget: every 4th frame, the segment still found
    strided = analyse_video(session, clip, stride=4, measure=False, rules=SegmentRules(window=1, min_frames=1))
    assert strided.frame_indices == list(range(0, 32, 4)) and strided.fps_processed == 2.5
    assert [s["plane"] for s in strided.to_dict()["segments"]] == ["Fetal thorax"]


def _confident(session: Session, paths: list[Path], plane: str, n: int) -> list[np.ndarray]:
    out = []
    for path in paths:
        image = session.load(path)
        top, probability = session.plane(image)
        if top == plane and probability > 0.8:
            out.append(image.pixels)
        if len(out) == n:
            return out
    pytest.skip(f"fewer than {n} shared images the bundled model calls {plane}")
    return out


def test_real_sweep_measures_best_brain_and_thorax_frames(tmp_path: Path, session: Session) -> None:
    from fetalscope.config import shared_data_dir

    data = shared_data_dir()
    hc18 = sorted((data / "hc18" / "training_set").glob("*_HC.png"))[:40]
    focus = sorted(p for p in (data / "focus_fetal_thorax").rglob("*.png") if "mask" not in str(p))[:40]
    if not hc18 or not focus:
        pytest.skip("shared HC18 / FOCUS images are absent")
    (brain,) = _confident(session, hc18, "Fetal brain", 1)
    (thorax,) = _confident(session, focus, "Fetal thorax", 1)
    clip = write_clip(tmp_path / "sweep.avi", [(brain, 12), (thorax, 12)], fps=20)
    result = analyse_video(session, clip, pixel_size_mm=0.2)
    summary = result.to_dict()
    assert [s["plane"] for s in summary["segments"]] == ["Fetal brain", "Fetal thorax"]
    assert summary["best_frames"]["Fetal brain"]["frame"] < 12 <= summary["best_frames"]["Fetal thorax"]["frame"]
    head, ctr = summary["measurements"]["head"], summary["measurements"]["cardiothoracic"]
    assert head["frame"] == summary["best_frames"]["Fetal brain"]["frame"] and head["pixel_size_mm"] == 0.2
    assert head["hc_mm"] is not None and head["hc_mm"] > 20
    assert ctr["frame"] == summary["best_frames"]["Fetal thorax"]["frame"] and ctr["measurement"] == "cardiothoracic"


def test_rules_cover_the_same_stretch_of_the_clip_whatever_the_stride():
    rules = SegmentRules()
    assert rules.for_step(1) == rules
    for step in (2, 3, 4, 9, 30):
        scaled = rules.for_step(step)
        assert scaled.window % 2 == 1 and scaled.window >= 1 and scaled.min_frames >= 1
        assert abs(scaled.window * step - rules.window) <= step + 1  # about the same number of source frames
        assert (scaled.enter, scaled.leave) == (rules.enter, rules.leave)
