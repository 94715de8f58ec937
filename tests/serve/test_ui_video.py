"""The Video tab's live mode driven directly with frames (the stream function the page calls): the current plane,
the latency of each frame and the checklist filling with the best frame so far; and a real multi-frame DICOM
(pydicom's SonoSite YBR cine) through the same function."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from fetalscope.imaging.loader import load_image
from fetalscope.pipeline.session import Session
from fetalscope.serve.ui_video import make_live_step

from .conftest import BUNDLED_EXAMPLES


@pytest.fixture(scope="module")
def step():
    service = SimpleNamespace(session=Session(brain_plane_model=None, brain_findings_model=None, detector=None))
    return make_live_step(service, lambda rgb: rgb)  # type: ignore[arg-type]


def _noisy(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(rgb.astype(np.int16) + rng.integers(-6, 7, rgb.shape), 0, 255).astype(np.uint8)


def test_live_checklist_fills_with_the_plane_held(step) -> None:
    rng = np.random.default_rng(0)
    other = load_image(BUNDLED_EXAMPLES / "phantom_other.png").pixels
    thorax = load_image(BUNDLED_EXAMPLES / "phantom_fetal_thorax.png").pixels
    live, texts, galleries = None, [], []
    for rgb in [other] * 6 + [thorax] * 12 + [other] * 6:
        text, gallery, live = step(_noisy(rgb, rng), live)
        texts.append(text)
        galleries.append(gallery)
    assert live.frames == 24 and len(live.latencies_ms) == 24 and all(t > 0 for t in live.latencies_ms)
    captured = {p for p, c in live.checklist.items() if c is not None}
    assert captured == {"Fetal thorax"}  # the one plane shown, nothing else claimed
    best = live.checklist["Fetal thorax"]
    assert 6 <= best.frame < 18 and np.abs(best.pixels.astype(int) - thorax).mean() < 8
    assert "| ✓ | Fetal thorax | frame " in texts[-1] and "| ✗ | Fetal brain | not yet |" in texts[-1]
    assert any("**Fetal thorax**" in t for t in texts[6:18]) and "between planes" in texts[0]
    sent = [g for g in galleries if isinstance(g, list)]  # the gallery goes out only when the checklist changed
    assert sent and len(sent) < 12 and sent[-1][0][1].startswith("Fetal thorax: frame ")
    assert f"median {float(np.median(live.latencies_ms)):.0f} ms over 24 frames" in texts[-1]


def test_live_takes_a_real_ybr_cine_frame_by_frame(step) -> None:
    pydicom = pytest.importorskip("pydicom")
    from fetalscope.imaging.video import open_frames

    source = open_frames(str(pydicom.examples.get_path("ybr_color")))
    live = None
    for frame in source.frames(max_frames=None):
        text, _, live = step(frame.pixels, live)
    assert live.frames == source.info.n_frames == 30 and text.startswith("Frame 29:")
    assert live.tracker.searches < 30  # the sector is not searched again on every frame
