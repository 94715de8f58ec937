"""The app offers the DICOM SR for download beside the HTML report when the upload was DICOM (a real browser
against the session's server); the file it offers is the SR of that upload."""

from __future__ import annotations

from urllib.parse import urlparse

import pydicom
import pytest

from dicom_outputs import find, write_us_dicom

from .test_browser import browser, page  # noqa: F401  (fixtures: Debian chromium via Playwright)

pytestmark = pytest.mark.browser


def test_a_dicom_upload_gets_its_sr_beside_the_reports(page, server, client, tmp_path):  # noqa: F811
    from fetalscope.serve.examples import BUNDLED_DIR

    upload = write_us_dicom(tmp_path / "scan-17.dcm", BUNDLED_DIR / "phantom_fetal_brain.png")
    expected = client.post("/v1/predict", files={"file": ("scan-17.dcm", upload.read_bytes())}).json()["plane"]
    page.goto(server.url + "/")
    page.wait_for_selector("#upload")
    page.set_input_files("#upload input[type=file]", str(upload))
    page.locator("#verdict").filter(has_text=expected).wait_for()
    page.locator("#report").click()
    link = page.locator("#report-files a[download='fetalscope-report-scan-17_sr.dcm']")
    link.wait_for()
    assert page.locator("#report-files a[download='fetalscope-report-scan-17.html']").count() == 1
    answer = client.get(urlparse(link.get_attribute("href")).path)
    assert answer.status_code == 200
    path = tmp_path / "downloaded_sr.dcm"
    path.write_bytes(answer.content)
    sr, src = pydicom.dcmread(path), pydicom.dcmread(upload)
    assert sr.StudyInstanceUID == src.StudyInstanceUID and sr.PatientID == src.PatientID
    view = next(i for i in find(sr, "CODE") if i.ConceptNameCodeSequence[0].CodeValue == "111031")
    assert view.ConceptCodeSequence[0].CodeMeaning == expected
