"""The UI in a real browser: Debian's chromium (headless) driven by Playwright, against the session's
server. Every request that would leave the machine is blocked and recorded: the page must need none.

Installed by ``scripts/install_browser.sh`` (``.ci/run`` calls it first); skipped only when
``/usr/bin/chromium`` is absent.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
TIMEOUT_MS = 60_000

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (run scripts/install_browser.sh)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    pg = context.new_page()
    external: list[str] = []

    def guard(route):
        host = urlparse(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            external.append(route.request.url)
            route.abort()

    pg.route("**/*", guard)
    pg.external_requests = external  # type: ignore[attr-defined]
    pg.set_default_timeout(TIMEOUT_MS)
    yield pg
    context.close()


def test_upload_predict_explain_offline(page, server, client, phantom_png, artifacts_dir, tmp_path):
    from fetalscope.serve.examples import BUNDLED_DIR

    example = BUNDLED_DIR / "phantom_fetal_brain.png"
    expected = client.post("/v1/predict", files={"file": ("brain.png", phantom_png)}).json()["plane"]
    upload = tmp_path / "upload-me.png"
    upload.write_bytes(example.read_bytes())

    page.goto(server.url + "/")
    page.wait_for_selector("#upload")
    page.set_input_files("#upload input[type=file]", str(upload))
    verdict = page.locator("#verdict")
    verdict.filter(has_text=expected).wait_for()
    assert expected in verdict.inner_text()
    for cls in ("Fetal brain", "Fetal femur", "Other"):  # a confidence bar for every covered class
        page.locator("#probabilities").filter(has_text=cls).wait_for()
    # no pixel size is known for a PNG: the field is empty with a hint, not a misleading 0
    px = page.locator("#measure-pixel-size textarea, #measure-pixel-size input").first
    assert px.input_value() == "" and "0.1" in (px.get_attribute("placeholder") or "")
    gradcam = page.locator("#explain-gradcam img")
    gradcam.wait_for(state="visible")
    assert gradcam.get_attribute("src")
    page.locator("#explain-gradcam-info").filter(has_text="computed in").wait_for()

    # a slow method on demand: open its tab, press Compute, the map and its time appear
    page.get_by_role("tab", name="Integrated Gradients").click()
    page.locator("#compute-integrated-gradients").click()
    page.locator("#explain-integrated-gradients img").wait_for(state="visible")
    page.locator("#explain-integrated-gradients-info").filter(has_text="computed in").wait_for()
    page.get_by_role("tab", name="Grad-CAM", exact=True).click()
    page.screenshot(path=str(artifacts_dir / "ui.png"), full_page=True)

    # the report downloads as JSON + HTML holding the prediction and the maps
    page.locator("#report").click()
    link = page.locator("#report-files a[download='fetalscope-report-upload-me.html']")
    link.wait_for()
    html = client.get(urlparse(link.get_attribute("href")).path).text
    assert f"Predicted plane: {expected}" in html and "Integrated Gradients" in html
    assert html.count("data:image/png;base64,") >= 3  # the image and two explanation maps

    # the uploaded file did not stay in the UI's upload folder
    digest = hashlib.sha256(upload.read_bytes()).hexdigest()
    for folder in server.upload_dirs():
        for f in folder.rglob("*"):
            if f.is_file():
                assert hashlib.sha256(f.read_bytes()).hexdigest() != digest, f"upload left at {f}"
    assert page.external_requests == []  # type: ignore[attr-defined]


def test_example_gallery_and_pages(page, server):
    page.goto(server.url + "/")
    page.locator("#examples img").first.wait_for(state="visible")
    page.locator("#examples img").first.click()
    page.locator("#verdict").filter(has_text="tiny-planes").wait_for()

    page.get_by_role("tab", name="Model performance").click()
    perf = page.locator("#performance-page")
    perf.filter(has_text="Tiny test model on phantoms").wait_for()  # the report's own title
    assert perf.locator("img[src^='data:image/png']").count() >= 2  # confusion matrix, reliability, ...
    page.get_by_role("tab", name="Ablation").click()
    page.locator("#ablation-page").filter(has_text="baseline").wait_for()
    page.get_by_role("tab", name="Overview").click()
    page.locator("#overview-page").filter(has_text="not a medical device").wait_for()
    page.screenshot(path=str(Path(server.log_path).parent / "pages.png"), full_page=True)
    assert page.external_requests == []  # type: ignore[attr-defined]


def test_api_docs_render_offline(page, server):
    page.goto(server.url + "/docs")
    page.locator(".opblock-summary-path").filter(has_text="/v1/predict").first.wait_for()
    assert page.locator(".opblock").count() >= 6
    assert page.external_requests == []  # type: ignore[attr-defined]


CONTRAST_JS = """
els => els.map(e => {
  const parse = c => (c.match(/[\\d.]+/g) || []).slice(0, 3).map(Number);
  const lin = x => { x /= 255; return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; };
  const lum = rgb => { const v = rgb.map(lin); return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
  const s = getComputedStyle(e);
  const a = lum(parse(s.color)), b = lum(parse(s.backgroundColor));
  return [(Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05), s.color, s.backgroundColor, e.innerText.slice(0, 60)];
})
"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_warning_boxes_are_readable_in_both_colour_schemes(browser, server, tmp_path, artifacts_dir, scheme):
    """Warnings and errors keep a readable contrast (WCAG AA, >= 4.5:1) in light and dark mode."""
    from PIL import Image
    from skimage import data

    photo = tmp_path / "photo.png"
    Image.fromarray(data.astronaut()).save(photo)  # not ultrasound: an error box and warnings
    context = browser.new_context(viewport={"width": 1400, "height": 1800}, color_scheme=scheme)
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    try:
        pg.goto(server.url + f"/?__theme={scheme}")
        pg.wait_for_selector("#upload")
        pg.set_input_files("#upload input[type=file]", str(photo))
        boxes = pg.locator("#verdict .fs-error, #verdict .fs-warning")
        pg.locator("#verdict .fs-error").first.wait_for(state="visible")
        results = boxes.evaluate_all(CONTRAST_JS)
        pg.screenshot(path=str(artifacts_dir / f"ui-warnings-{scheme}.png"), full_page=False)
    finally:
        context.close()
    assert results
    for ratio, colour, background, text in results:
        assert ratio >= 4.5, f"{scheme}: '{text}' is {colour} on {background} (contrast {ratio:.2f})"


FONT_JS = """
async () => {
  await document.fonts.ready;
  const family = sel => { const e = document.querySelector(sel); return e ? getComputedStyle(e).fontFamily : null; };
  const faces = Array.from(document.fonts).map(f => [f.family.replace(/["']/g, ''), f.weight, f.status]);
  return {heading: family('h1'), label: family('[data-testid="block-info"], [data-testid="block-label"]'),
          body: family('.gradio-container'), bold: document.fonts.check('bold 16px "Fetalscope Sans"'),
          regular: document.fonts.check('16px "Fetalscope Sans"'), faces};
}
"""


def test_page_uses_the_bundled_font_and_nothing_external(page, server):
    """Headings and labels are set in the bundled family, its bold face is loaded from our own server (no
    Google Fonts, no fallback to Gradio's stub semi-bold file that drew bold capitals as small caps)."""
    fonts_seen: list[str] = []
    page.on("response", lambda r: fonts_seen.append(urlparse(r.url).path) if "font" in r.headers.get(
        "content-type", "") else None)
    page.goto(server.url + "/")
    page.locator("h1").filter(has_text="fetalscope").wait_for()
    # the labels render a moment after the heading; measure only once one is on the page
    page.locator('[data-testid="block-info"], [data-testid="block-label"]').first.wait_for()
    info = page.evaluate(FONT_JS)
    for where in ("heading", "label", "body"):
        assert info[where] and info[where].strip("'\" ").startswith("Fetalscope Sans"), (where, info[where])
    assert info["bold"] and info["regular"], info
    loaded = {(family, weight) for family, weight, status in info["faces"] if status == "loaded"}
    assert ("Fetalscope Sans", "700") in loaded and ("Fetalscope Sans", "400") in loaded, info["faces"]
    assert not [f for f in loaded if "IBM Plex" in f[0]], info["faces"]
    assert "/_fonts/DejaVuSans-Bold.woff2" in fonts_seen, fonts_seen
    assert page.external_requests == []  # type: ignore[attr-defined]


def test_report_pdf_downloads_from_the_app(page, server, client, phantom_png, tmp_path):
    """The report's PDF link downloads a PDF holding the plane the API gives for the same image."""
    pypdf = pytest.importorskip("pypdf")
    expected = client.post("/v1/predict", files={"file": ("brain.png", phantom_png)}).json()
    upload = tmp_path / "pdf-me.png"
    upload.write_bytes(phantom_png)
    page.goto(server.url + "/")
    page.wait_for_selector("#upload")
    page.set_input_files("#upload input[type=file]", str(upload))
    page.locator("#verdict").filter(has_text=expected["plane"]).wait_for()
    page.locator("#report").click()
    link = page.locator("#report-files a[download='fetalscope-report-pdf-me.pdf']")
    link.wait_for()
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / "downloaded.pdf"
    download.value.save_as(saved)
    reader = pypdf.PdfReader(saved)
    text = " ".join(" ".join(p.extract_text() for p in reader.pages).split())
    assert f"Predicted plane: {expected['plane']} ({100 * expected['plane_probability']:.1f}%)" in text
    assert "pdf-me.png" in text and "Research and education use only" in text
    assert page.external_requests == []  # type: ignore[attr-defined]


def test_quality_checklist_section(page, server, client, phantom_png, artifacts_dir, tmp_path):
    """The Acquisition quality section shows the checklist the API computes: ticks and crosses, values,
    expected ranges, advice, score and grade, and the drawing it was judged on."""
    expected = client.post("/v1/quality", files={"file": ("brain.png", phantom_png)}, data={"what": "head"}).json()
    upload = tmp_path / "quality-me.png"
    upload.write_bytes(phantom_png)
    page.goto(server.url + "/")
    page.wait_for_selector("#upload")
    page.set_input_files("#upload input[type=file]", str(upload))
    page.locator("#verdict").filter(has_text=expected["plane"]).wait_for()
    page.locator("#quality-what input").first.click()
    page.get_by_role("option", name="head", exact=True).click()
    page.locator("#quality").click()
    info = page.locator("#quality-info")
    info.filter(has_text=f"Score {expected['score']} / 100: {expected['grade']}").wait_for()
    text = info.inner_text()
    for c in expected["criteria"]:
        assert c["label"] in text and c["expected"] in text
        if c["advice"]:
            assert c["advice"] in text
    assert "✓" in text or "✗" in text
    # each judged criterion's compliance (the record's number, as a percentage) in its own row's column
    headers = [h.strip() for h in info.locator("th").all_inner_texts()]
    column = headers.index("compliance")
    for c in expected["criteria"]:
        row = info.locator("tr").filter(has_text=c["label"]).first
        cell = row.locator("td").nth(column).inner_text().strip()
        assert cell == ("" if c["compliance"] is None else f"{100 * c['compliance']:.0f}%"), (c, cell)
    page.locator("#quality-image img").wait_for(state="visible")
    # the calibration and held-out study, as the scripts wrote them
    page.get_by_text("How the checklist was calibrated and tested").click()
    page.locator("#quality-card").filter(has_text="Degradations, head checklist").wait_for()
    page.screenshot(path=str(artifacts_dir / "ui_quality.png"), full_page=True)
    assert page.external_requests == []  # type: ignore[attr-defined]
