"""The PDF report: parsed back with pypdf, its text carries the analysis' own plane, probabilities and
measurement; pages are A4; the bundled font is embedded (µ, ±, ≥ print); nothing runs off the page, a long
file name included."""

from __future__ import annotations

import io

import numpy as np
import pytest

from fetalscope.explain.types import Explanation
from fetalscope.imaging import load_image
from fetalscope.pipeline import Analysis, ClassScore, ExplanationResult
from fetalscope.pipeline.pdf_report import MARGIN_MM
from fetalscope.serve.examples import BUNDLED_DIR

pypdf = pytest.importorskip("pypdf")
A4_PT = (595.28, 841.89)
MM = 72 / 25.4
LONG_NAME = "scan_" + "0123456789abcdef" * 8 + "_final_export.png"


def analysis_with_everything(name: str = LONG_NAME) -> Analysis:
    image = load_image(BUNDLED_DIR / "phantom_fetal_brain.png")
    h, w = image.pixels.shape[:2]
    probs = [ClassScore("Fetal brain", 0.871234), ClassScore("Fetal thorax", 0.1), ClassScore("Maternal cervix", None),
             ClassScore("Other", 0.028766)]
    measurement = {"measurement": "head", "quality": "ok",
                   "model": {"id": "hc18-head", "version": "0.1.0", "revision": 5, "runtime": "onnx"}, "hc_mm": 171.4,
                   "hc_interval_mm": [167.93, 174.87], "hc_interval_coverage": 0.9, "bpd_mm": 45.25, "ofd_mm": 61.0,
                   "ga_weeks": 19.6, "ga": "19w4d", "pixel_size_mm": 0.1,
                   "pixel_size_source": "argument", "flags": ["HC ≥ 3 SD above the Hadlock mean ± 2 mm"],
                   "ellipse": {"cx": w / 2, "cy": h / 2, "a": w / 4, "b": h / 5, "angle_deg": 10.0}}
    findings = {"label": "normal", "probability": 0.93, "status": "demonstration",
                "warning": "Trained on 40 images; not validated.",
                "probabilities": [{"label": "abnormal", "probability": 0.07}, {"label": "normal", "probability": 0.93}],
                "model": {"id": "brain-normal-abnormal-demo", "version": "1"}}
    m = np.zeros((4, 5), np.float32)
    m[1, 1] = 1.0
    e = Explanation(map=m, target=0, method="gradcam", params={}, seconds=0.1, probability=0.87)
    region = np.zeros((40, 50, 3), np.uint8)
    return Analysis(image=name, width=w, height=h, model={"id": "sononet-planes", "version": "1.0.0",
                                                          "runtime": "onnx"},
                    plane="Fetal brain", plane_probability=0.871234, probabilities=probs,
                    classes_not_covered=["Maternal cervix"], brain_findings=findings, measurement=measurement,
                    warnings=["Pixel spacing µm-scale: check it", "Normal/abnormal finding: demonstration only"],
                    ood={"flag": False, "score": 0.1}, explanations=[ExplanationResult(e, "Fetal brain", region,
                                                                                       region + 90)],
                    loaded=image)


def pdf_text_and_boxes(data: bytes) -> tuple[str, list[tuple[float, float, str]], pypdf.PdfReader]:
    """Text of every page and, for each drawn text run, its left x, its estimated right x and its text."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    from fetalscope.pipeline.pdf_report import FONT, _register_fonts

    _register_fonts()
    reader = pypdf.PdfReader(io.BytesIO(data))
    runs: list[tuple[float, float, str]] = []

    def visit(text, cm, tm, font_dict, font_size):
        if text.strip():
            size = font_size * (tm[0] or 1)
            x = tm[4] * cm[0] + cm[4]
            runs.append((x, x + stringWidth(text.strip("\n"), FONT, size) * 0.97, text))

    pages = [page.extract_text(visitor_text=visit) for page in reader.pages]
    return "\n".join(pages), runs, reader


def test_pdf_carries_the_analysis_on_a4_with_the_font_embedded(tmp_path):
    a = analysis_with_everything()
    out = tmp_path / "r.pdf"
    data = a.to_pdf(out)
    assert out.read_bytes() == data and data.startswith(b"%PDF-")
    text, runs, reader = pdf_text_and_boxes(data)
    for page in reader.pages:
        assert (float(page.mediabox.width), float(page.mediabox.height)) == pytest.approx(A4_PT, abs=0.5)
    flat = " ".join(text.split())
    assert f"Predicted plane: {a.plane} ({100 * a.plane_probability:.1f}%)" in flat
    for c in a.probabilities:
        shown = "not covered by this model" if c.probability is None else f"{100 * c.probability:.1f}%"
        assert f"{c.label} {shown}" in flat
    for label, key, digits in (("HC (mm)", "hc_mm", 1), ("BPD (mm)", "bpd_mm", 1), ("OFD (mm)", "ofd_mm", 1)):
        assert f"{label} {a.measurement[key]:.{digits}f}" in flat
    assert "HC 90% interval (mm) 167.9 to 174.9" in flat  # the record's calibrated interval, as computed
    assert "measured by hc18-head 0.1.0 revision 5" in flat  # which weights measured it, in the table
    assert a.measurement["ga"] in flat and "Research and education use only" in flat
    assert "HC ≥ 3 SD above the Hadlock mean ± 2 mm" in flat and "µm-scale" in flat  # the bundled glyphs
    assert "Trained on 40 images; not validated." in flat and "Grad-CAM" in flat
    assert flat.count("Normal/abnormal finding: demonstration only") == 0  # shown once, in the findings banner
    fonts = set()
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"] if "/DescendantFonts" in font \
                else font.get("/FontDescriptor")
            if descriptor is not None and "/FontFile2" in descriptor.get_object():
                fonts.add(str(font["/BaseFont"]))
    assert {f.split("+")[-1] for f in fonts} == {"DejaVuSans", "DejaVuSans-Bold"}, fonts  # the bundled faces


def test_long_file_name_wraps_and_nothing_runs_off_the_page():
    data = analysis_with_everything().to_pdf()
    text, runs, _ = pdf_text_and_boxes(data)
    joined = "".join(text.split())
    assert LONG_NAME in joined  # all of it is printed ...
    assert all(LONG_NAME not in line for line in text.splitlines())  # ... over several lines
    left, right = MARGIN_MM * MM - 1, A4_PT[0] - MARGIN_MM * MM + 1
    off = [(round(x0), round(x1), t[:40]) for x0, x1, t in runs if x0 < left or x1 > right]
    assert not off, off
