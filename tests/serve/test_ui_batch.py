"""The batch view's functions in-process on a real service (the tiny test bundle): each file analysed in turn
through the app's one analysis call, progress per image, a bad file's own error, the batch limit, no upload
copy left behind, and the side-by-side card carrying a real measurement's numbers."""

from __future__ import annotations

import html

import pytest

from fetalscope.pipeline.html_report import measurement_rows
from fetalscope.serve import ui_batch
from fetalscope.serve.service import Service
from fetalscope.serve.settings import ServeSettings

from .conftest import BUNDLED_EXAMPLES


@pytest.fixture(scope="module")
def service(tiny_bundle) -> Service:
    return Service(ServeSettings(plane_model=tiny_bundle, detector=None, brain_findings_model=None))


def test_files_analysed_in_turn_with_progress_errors_and_limit(service, tmp_path, monkeypatch):
    monkeypatch.setattr(ui_batch, "MAX_BATCH_FILES", 3)
    names = ["phantom_fetal_brain.png", "broken.png", "phantom_fetal_femur.png", "phantom_other.png"]
    files = []
    for name in names:  # the upload widget's copies, one folder each
        folder = tmp_path / f"upload-{len(files)}"
        folder.mkdir()
        path = folder / name
        path.write_bytes(b"\x89PNG\r\n\x1a\nbroken" if name == "broken.png" else (BUNDLED_EXAMPLES / name).read_bytes())
        files.append(path)
    steps: list[tuple] = []
    items = ui_batch.analyse_uploads(service, files, lambda p, desc, unit: steps.append((p, desc)))

    assert [item.name for item in items] == names
    assert [item.analysis is not None for item in items] == [True, False, True, False]
    for item in (items[0], items[2]):  # the same answer as the session gives for the file
        assert item.record["plane"] == service.session.analyse(BUNDLED_EXAMPLES / item.name).plane
    assert "broken.png" in items[1].error and "at most 3 images" in items[3].error
    assert steps == [((0, 3), "Analysing image 1 of 3"), ((1, 3), "Analysing image 2 of 3"),
                     ((2, 3), "Analysing image 3 of 3"), ((3, 3), "Analysed 3 of 3 images")]
    assert not any(f.exists() for f in files)  # every copy deleted, the one over the limit too

    table = ui_batch.table_html(items)
    assert table.count("data-status='ok'") == 2 and table.count("data-status='error'") == 2
    assert html.escape(items[1].error) in table
    captions = [caption for _, caption in ui_batch.gallery_items(items)]
    assert captions[1].startswith(f"3. phantom_fetal_femur.png: {items[2].record['plane']}")
    assert ui_batch.compare_choices(items) == [("1. phantom_fetal_brain.png", 0), ("3. phantom_fetal_femur.png", 2)]


def test_side_by_side_card_shows_the_measurement_numbers(service):
    data = (BUNDLED_EXAMPLES / "phantom_fetal_thorax.png").read_bytes()
    analysis = ui_batch.analyse_file(service, data, "thorax.png", upload=False)
    from fetalscope.biometry.measure import (
        measure_image,  # the measurement itself (the tiny plane model routes nothing)
    )

    analysis.measurement = measure_image(analysis.loaded, "cardiothoracic", pixel_size_mm=0.2)
    assert analysis.measurement["quality"] == "ok"
    items = [ui_batch.BatchItem("thorax.png", analysis), ui_batch.BatchItem("bad.png", error="unreadable")]
    page = ui_batch.compare_html(items, [0, 1])
    assert page.count("class='fs-compare-card'") == 1  # a file with no analysis has no card
    assert "Measurement: cardiothoracic" in page
    rows = measurement_rows(analysis.measurement)
    assert any(value != "n/a" for _, value in rows)
    model = analysis.measurement["model"]  # the bundled focus-ctr names the revision of its weights
    assert ("measured by", f"{model['id']} {model['version']} revision {model['revision']}") in rows
    for label, value in rows:
        assert f"<td>{html.escape(label)}</td><td>{html.escape(value)}</td>" in page
    assert "Tick two or more" in ui_batch.compare_html(items, [])
