"""Several images in one drop, in a real browser against the session's server: a row per file with the plane
``Session.analyse`` gives for that file, progress "image i of n", a thumbnail that opens its image in the
detailed view, a side-by-side comparison, a bad file's own error row, and a new drop that replaces the last
one without pressing x."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import BUNDLED_EXAMPLES
from .test_browser import browser, page  # noqa: F401  (fixtures: Debian chromium via Playwright)

pytestmark = pytest.mark.browser

NAMES = ("phantom_fetal_brain.png", "phantom_fetal_femur.png", "phantom_other.png")
# every progress text the page shows while it works, kept by an observer installed before the drop
RECORD_PROGRESS_JS = """
() => {
  window.fsProgress = [];
  new MutationObserver(() => {
    const m = document.body.innerText.match(/image \\d+ of \\d+/g);
    if (m) for (const t of m) if (!window.fsProgress.includes(t)) window.fsProgress.push(t);
  }).observe(document.body, {childList: true, subtree: true, characterData: true});
}
"""


@pytest.fixture(scope="module")
def expected(server) -> dict[str, dict]:
    """What ``Session.analyse`` says of each file (the server's plane model, in this process)."""
    from fetalscope.pipeline.session import Session

    session = Session(server.bundle, detector=None)
    return {name: session.analyse(BUNDLED_EXAMPLES / name, name=name).to_dict() for name in NAMES}


def _copies(tmp_path: Path, names: tuple[str, ...], prefix: str) -> list[Path]:
    out = []
    for name in names:
        path = tmp_path / f"{prefix}{name}"
        path.write_bytes((BUNDLED_EXAMPLES / name).read_bytes())
        out.append(path)
    return out


def _rows(page) -> list[dict]:  # noqa: F811
    return page.locator("#batch-rows tr.fs-batch-row").evaluate_all(
        "rows => rows.map(r => ({status: r.dataset.status, cells: [...r.cells].map(c => c.innerText.trim())}))")


def test_three_images_at_once_rows_pick_and_side_by_side(page, server, expected, tmp_path,  # noqa: F811
                                                         artifacts_dir):
    files = _copies(tmp_path, NAMES, "")
    page.goto(server.url + "/")
    page.wait_for_selector("#upload")
    assert not page.locator("#batch").is_visible()  # no batch view before a batch
    page.evaluate(RECORD_PROGRESS_JS)
    page.set_input_files("#upload input[type=file]", [str(f) for f in files])
    page.locator("#batch-rows tr.fs-batch-row").nth(2).wait_for()
    rows = _rows(page)
    assert [r["status"] for r in rows] == ["ok"] * 3
    for row, name in zip(rows, NAMES, strict=True):  # each row: its file, the plane and confidence the session gives
        want = expected[name]
        assert row["cells"][1] == name and row["cells"][2] == want["plane"]
        assert row["cells"][3] == f"{100 * want['plane_probability']:.1f}%"
    progress = page.evaluate("window.fsProgress")
    # the progress bar counted the images as it went (a tiny model is quick: not every step need be painted)
    assert progress and all(t in ("image 1 of 3", "image 2 of 3", "image 3 of 3") for t in progress), progress
    # the detailed view opens on the first image; the upload widget is empty again, ready for the next drop
    page.locator("#verdict").filter(has_text=NAMES[0]).wait_for()
    assert page.locator("#upload input[type=file]").count() == 1
    assert page.locator("#batch-gallery img").count() == 3
    page.screenshot(path=str(artifacts_dir / "ui-multi.png"), full_page=True)

    # pick the third thumbnail: its analysis fills the detailed view (verdict, bars, explanations)
    page.locator("#batch-gallery img").nth(2).click()
    verdict = page.locator("#verdict")
    verdict.filter(has_text=NAMES[2]).wait_for()
    assert expected[NAMES[2]]["plane"] in verdict.inner_text()
    page.locator("#explain-gradcam-info").filter(has_text="computed in").wait_for()
    top = max(expected[NAMES[2]]["probabilities"], key=lambda c: c["probability"] or 0)
    page.locator("#probabilities").filter(has_text=top["label"]).wait_for()

    # side by side: the first two start there; tick the third for three cards, untick to two
    cards = page.locator("#compare .fs-compare-card")
    assert cards.count() == 2
    page.locator("#compare-pick").get_by_label(f"3. {NAMES[2]}").check()
    cards.nth(2).wait_for()
    page.locator("#compare-pick").get_by_label(f"1. {NAMES[0]}").uncheck()
    page.wait_for_function("document.querySelectorAll('#compare .fs-compare-card').length === 2")
    for card, name in zip(cards.all(), NAMES[1:], strict=True):
        want, text = expected[name], card.inner_text()
        assert name in text and want["plane"] in text
        assert card.locator("img").get_attribute("src").startswith("data:image/png")
        for c in want["probabilities"]:  # every class probability, as the session computed it
            shown = "not covered" if c["probability"] is None else f"{100 * c['probability']:.1f}%"
            assert card.locator("tr").filter(has_text=c["label"]).filter(has_text=shown).count() == 1
    page.locator("#compare").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts_dir / "ui-side-by-side.png"), full_page=True)
    assert page.external_requests == []  # type: ignore[attr-defined]


def test_bad_file_gets_its_own_row_and_a_new_drop_replaces_the_last(page, server, expected, tmp_path):  # noqa: F811
    first = _copies(tmp_path, NAMES[:2], "a-")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not an image at all" * 20)
    page.goto(server.url + "/")
    page.wait_for_selector("#upload")
    page.set_input_files("#upload input[type=file]", [str(first[0]), str(broken), str(first[1])])
    page.locator("#batch-rows tr.fs-batch-row").nth(2).wait_for()
    rows = _rows(page)
    assert [r["status"] for r in rows] == ["ok", "error", "ok"]
    assert rows[1]["cells"][1] == "broken.png" and "Could not analyse this file" in rows[1]["cells"][2]
    assert rows[0]["cells"][2] == expected[NAMES[0]]["plane"] and rows[2]["cells"][2] == expected[NAMES[1]]["plane"]
    assert page.locator("#batch-gallery img").count() == 2  # only the analysed images have thumbnails
    for folder in server.upload_dirs():  # no file of the batch stayed in the UI's upload folder
        assert not [f for f in folder.rglob("*") if f.is_file() and f.name in (broken.name, *(p.name for p in first))]

    # a second drop, without pressing x, replaces the batch
    second = _copies(tmp_path, (NAMES[2], NAMES[0]), "b-")
    page.set_input_files("#upload input[type=file]", [str(f) for f in second])
    page.locator("#batch-rows").filter(has_text="b-" + NAMES[2]).wait_for()
    assert [r["cells"][1] for r in _rows(page)] == ["b-" + NAMES[2], "b-" + NAMES[0]]
    page.locator("#verdict").filter(has_text="b-" + NAMES[2]).wait_for()

    # one file alone is the single-image view: no batch view
    page.set_input_files("#upload input[type=file]", str(first[1]))
    page.locator("#verdict").filter(has_text=first[1].name).wait_for()
    page.locator("#batch").wait_for(state="hidden")
    assert page.external_requests == []  # type: ignore[attr-defined]
