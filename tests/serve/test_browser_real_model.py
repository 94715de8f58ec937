"""The app with its bundled models on real images: a four-chamber view (plane, then heart/thorax ellipses and
CTR) and a brain (plane, then the normal/abnormal findings under their model card's warning banner)."""

from __future__ import annotations

from urllib.parse import urlparse

import httpx
import pytest

from .test_browser import browser, page  # noqa: F401  (fixtures: Debian chromium via Playwright)

pytestmark = pytest.mark.browser


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
    low, high = api["ctr_interval"]  # and so is its calibrated interval
    assert f"{low:.3f} to {high:.3f}" in info.inner_text() and "90% interval" in info.inner_text()
    assert page.locator("#measure-what input").input_value() == "cardiothoracic"  # the selector says what ran
    page.screenshot(path=str(artifacts_dir / "ui-thorax.png"), full_page=True)
    # the downloadable report carries the measurement that was shown, and fits the window
    page.locator("#report").click()
    link = page.locator("#report-files a[download$='.html']")
    link.wait_for()
    html = httpx.get(real_server + urlparse(link.get_attribute("href")).path, timeout=60).text
    assert "Measurement: cardiothoracic" in html and f"{api['ctr']['circumference']:.3f}" in html
    report = page.context.new_page()
    report.set_viewport_size({"width": 1200, "height": 900})
    report.set_content(html)
    assert report.evaluate("document.documentElement.scrollWidth") <= 1200  # the raw record wraps
    report.close()
    assert page.external_requests == []  # type: ignore[attr-defined]


def test_real_brain_image_shows_findings_under_the_card_warning(page, real_server, real_brain_image,  # noqa: F811
                                                                artifacts_dir):
    from fetalscope.models.bundle import read_card

    card = read_card("brain-normal-abnormal-demo")
    api = httpx.post(real_server + "/v1/predict", files={"file": (real_brain_image.name,
                                                                   real_brain_image.read_bytes())}, timeout=120).json()
    findings = api["brain_findings"]
    assert api["plane"] == "Fetal brain" and findings["warning"] == card["warning"]
    page.goto(real_server + "/")
    page.wait_for_selector("#upload")
    page.set_input_files("#upload input[type=file]", str(real_brain_image))
    verdict = page.locator("#verdict")
    verdict.filter(has_text="Fetal brain").wait_for()
    banner = verdict.locator(".fs-findings-warning")
    banner.wait_for(state="visible")
    assert card["warning"] in banner.inner_text() and f"Model status: {card['status']}." in banner.inner_text()
    assert banner.bounding_box()["height"] > 10  # a real, laid-out banner, not hidden text
    block = verdict.locator(".fs-findings").inner_text()
    for item in findings["probabilities"]:  # both class probabilities, as the API gives them
        assert f"{item['label']} {100 * item['probability']:.1f}%" in block
    assert verdict.inner_text().count(card["warning"]) == 1  # in the banner, not repeated as a plain warning
    page.locator("#measurement-info").filter(has_text="head").wait_for()
    assert page.locator("#measure-what input").input_value() == "head"  # the selector says what ran
    page.screenshot(path=str(artifacts_dir / "ui-brain-findings.png"), full_page=True)

    # the explanations follow the picked prediction: the plane model first, then the findings model
    caption = page.locator("#explain-gradcam-info")
    caption.filter(has_text="sononet-planes").wait_for()
    assert "plane model" in caption.inner_text() and "for class Fetal brain" in caption.inner_text()
    assert card["warning"] not in caption.inner_text()
    plane_src = page.locator("#explain-gradcam img").get_attribute("src")
    picker = page.locator("#explain-model")
    assert picker.is_visible()
    picker.get_by_text("Normal vs abnormal (demonstration)").click()
    caption.filter(has_text=card["name"]).wait_for()
    text = caption.inner_text()
    assert f"for class {findings['label']}" in text and "normal-vs-abnormal model (demonstration)" in text
    assert card["warning"] in text and f"Model status: {card['status']}." in text  # the card's caution, repeated
    assert f"class {findings['label']}" in page.locator("#explain-gradcam").inner_text()  # the map's own label
    assert page.locator("#explain-gradcam img").get_attribute("src") != plane_src  # another map
    page.screenshot(path=str(artifacts_dir / "ui-brain-findings-explained.png"), full_page=True)
    assert page.external_requests == []  # type: ignore[attr-defined]
