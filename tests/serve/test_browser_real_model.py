"""The app with its bundled models on a real four-chamber image: plane, then heart/thorax ellipses and CTR."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from .conftest import _free_port, wait_until_healthy
from .test_browser import browser, page  # noqa: F401  (fixtures: Debian chromium via Playwright)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    port = _free_port()
    log_path = tmp_path_factory.mktemp("real-server") / "server.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("FETALSCOPE_TOKEN", None)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "fetalscope", "serve", "--port", str(port),
                                 "--detector", "none"], stdout=log, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_healthy(proc, url, log_path.read_text, timeout_s=120)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def test_real_thorax_image_shows_plane_ellipses_and_ctr(page, real_server, shared_data, artifacts_dir):  # noqa: F811
    image = sorted((shared_data / "focus_fetal_thorax" / "images").glob("*.png"))[0]
    api = httpx.post(real_server + "/v1/measure", files={"file": (image.name, image.read_bytes())},
                     data={"what": "cardiothoracic"}, timeout=120).json()
    assert api["ctr"] is not None and 0.3 < api["ctr"]["circumference"] < 0.7
    page.goto(real_server + "/")
    page.wait_for_selector("#upload")
    page.set_input_files("#upload input[type=file]", str(image))
    page.locator("#verdict").filter(has_text="Fetal thorax").wait_for()
    page.locator("#measurement img").wait_for(state="visible")
    info = page.locator("#measurement-info")
    info.filter(has_text="circumference").wait_for()
    # the number on the page is the one the API computes for the same file
    assert f"{api['ctr']['circumference']:.3f}" in info.inner_text()
    page.screenshot(path=str(artifacts_dir / "ui-thorax.png"), full_page=True)
    assert page.external_requests == []  # type: ignore[attr-defined]
