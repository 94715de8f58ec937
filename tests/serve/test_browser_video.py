"""The Video tab in a real browser against the server with its bundled models: a clip of the bundled example
stills (known planes) gives the timeline, the summary and the best-frame gallery with the numbers
``POST /v1/video`` gives for the same file; the slider scrubs frames; and the live mode, fed by Chromium's fake
camera, fills the current-plane line with a measured latency."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from fetalscope.imaging.loader import load_image

from .conftest import BUNDLED_EXAMPLES
from .test_browser import ARGS, CHROMIUM, TIMEOUT_MS, browser, page  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser


def _clip(path: Path) -> Path:
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 224))
    for name, count in (("phantom_other.png", 8), ("phantom_fetal_thorax.png", 12), ("phantom_fetal_brain.png", 12),
                        ("phantom_other.png", 8)):
        base = cv2.resize(load_image(BUNDLED_EXAMPLES / name).pixels, (320, 224)).astype(np.int16)
        for _ in range(count):
            noisy = np.clip(base + rng.integers(-6, 7, base.shape), 0, 255).astype(np.uint8)
            writer.write(cv2.cvtColor(noisy, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_video_tab_shows_what_the_api_computes(page, real_server, artifacts_dir, tmp_path):  # noqa: F811
    clip = _clip(tmp_path / "sweep.avi")
    api = httpx.post(real_server + "/v1/video", files={"file": (clip.name, clip.read_bytes())}, timeout=300).json()
    assert api["frames"] == 40 and api["best_frames"], api
    page.goto(real_server + "/")
    page.get_by_role("tab", name="Video").click()
    page.set_input_files("#video-upload input[type=file]", str(clip))
    summary = page.locator("#video-summary")
    summary.filter(has_text="best frame of").wait_for()
    text = summary.inner_text()
    assert f"{api['frames']} of {api['frames_source']} frames analysed" in text
    for segment in api["segments"]:
        assert re.search(rf"{segment['plane']}\s+{segment['start_frame']}\s+{segment['end_frame']}", text), text
    for plane, best in api["best_frames"].items():
        assert re.search(rf"{plane}\s+{best['frame']}\s+{best['time_s']:.3f}\s+{best['probability']:.3f}", text), text
    for what, record in api["measurements"].items():
        assert record["plane"] in text and what in (record.get("measurement") or what)
    page.locator("#video-timeline img").wait_for(state="visible")
    gallery = page.locator("#video-best img")
    gallery.first.wait_for(state="visible")
    assert gallery.count() == len(api["best_frames"])
    captions = page.locator("#video-best").inner_text()
    assert all(f"{plane}: frame {best['frame']}" in captions for plane, best in api["best_frames"].items())
    # scrub: the slider's frame and its plane, as the per-frame rows say
    box = page.locator("#video-slider input[type=number]")
    box.fill("15")
    box.press("Enter")
    info = page.locator("#video-frame-info")
    info.filter(has_text="Frame 15").wait_for()
    assert "segment:" in info.inner_text()
    page.locator("#video-frame img").wait_for(state="visible")
    page.screenshot(path=str(artifacts_dir / "ui-video.png"), full_page=True)
    assert page.external_requests == []  # type: ignore[attr-defined]


@pytest.fixture()
def camera_page(browser):  # noqa: F811
    """A page of a second Chromium (same Playwright) whose camera is its built-in fake device (no prompt)."""
    fake_camera = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
    b = browser.browser_type.launch(executable_path=str(CHROMIUM), headless=True, args=[*ARGS, *fake_camera])
    context = b.new_context(viewport={"width": 1400, "height": 1800}, permissions=["camera"])
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    yield pg
    b.close()


def test_live_mode_streams_the_fake_camera(camera_page, real_server):
    camera_page.goto(real_server + "/")
    camera_page.get_by_role("tab", name="Video").click()
    camera = camera_page.locator("#live-camera")
    camera.scroll_into_view_if_needed()
    camera.get_by_text("Click to Access Webcam").click()
    camera.get_by_role("button", name="capture photo").click()  # Gradio's "Record": start streaming
    checklist = camera_page.locator("#live-checklist")
    checklist.filter(has_text=re.compile(r"Frame \d+: .*latency \d+ ms")).wait_for(timeout=120_000)
    checklist.filter(has_text=re.compile(r"Frame ([3-9]|\d{2,}): ")).wait_for(timeout=120_000)  # frames keep coming
    text = checklist.inner_text()
    assert "Fetal brain" in text and "Fetal thorax" in text  # the checklist lists the standard planes
    assert "Other" not in text.split("plane")[-1]  # ... and Other is no standard plane
    assert float(re.search(r"latency (\d+) ms", text).group(1)) > 0
