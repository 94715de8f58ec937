"""The print-ready PDF report of one :class:`~fetalscope.pipeline.analysis.Analysis`, for a clinic's records.

A4 pages with 18 mm margins, laid out by ReportLab's flowables (text wraps, tables and images are sized to the
frame, so nothing runs off a page): title, image name, date and time, fetalscope and model versions, the image
with what was found drawn on it (:meth:`Analysis.plot`), the verdict with every class probability, the brain
sub-plane, the normal/abnormal findings under their model card's caution, the measurement table, the
detections, the explanation maps with their titles and colour scales, every warning and the research-use
disclaimer (also in every page's footer). The bundled DejaVu Sans (:func:`fetalscope.config.bundled_fonts_dir`)
is embedded, so µ, ±, ≥ print on any machine. Every value comes from the analysis record (the JSON report's
``analysis``); nothing is typed in.
"""

from __future__ import annotations

import datetime as _dt
import io
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from fetalscope.config import bundled_fonts_dir
from fetalscope.explain.overlay import png_bytes
from fetalscope.pipeline.cautions import listed_warnings
from fetalscope.pipeline.html_report import DISCLAIMER, measurement_rows, quality_rows, quality_summary, report_record

FONT, FONT_BOLD = "FetalscopeSans", "FetalscopeSans-Bold"
MARGIN_MM = 18
GRID = "#b8bec7"
HEAD_BG = "#eef1f5"
CAUTION_BG = "#fde68a"
WARNING_BG = "#fff4e5"


def _register_fonts() -> None:
    """Register the bundled DejaVu Sans faces with ReportLab (once); they are embedded as subsets."""
    from reportlab.lib.fonts import addMapping
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if FONT in pdfmetrics.getRegisteredFontNames():
        return
    folder = bundled_fonts_dir()
    pdfmetrics.registerFont(TTFont(FONT, str(folder / "DejaVuSans-Regular.ttf")))
    pdfmetrics.registerFont(TTFont(FONT_BOLD, str(folder / "DejaVuSans-Bold.ttf")))
    for bold, italic in ((0, 0), (0, 1), (1, 0), (1, 1)):  # no italic face is bundled: italic prints upright
        addMapping(FONT, bold, italic, FONT_BOLD if bold else FONT)


def _styles() -> dict[str, Any]:
    from reportlab.lib import colors
    from reportlab.lib.styles import ParagraphStyle

    base = ParagraphStyle("body", fontName=FONT, fontSize=9.5, leading=12.5, splitLongWords=True, spaceAfter=3)
    return {
        "body": base,
        "small": ParagraphStyle("small", parent=base, fontSize=8, leading=10, spaceBefore=2),
        "cell": ParagraphStyle("cell", parent=base, spaceAfter=0),
        "cell_bold": ParagraphStyle("cell_bold", parent=base, fontName=FONT_BOLD, spaceAfter=0),
        "title": ParagraphStyle("title", parent=base, fontName=FONT_BOLD, fontSize=18, leading=22, spaceAfter=6),
        "h2": ParagraphStyle("h2", parent=base, fontName=FONT_BOLD, fontSize=12.5, leading=16, spaceBefore=8,
                             spaceAfter=4, keepWithNext=True),
        "verdict": ParagraphStyle("verdict", parent=base, fontName=FONT_BOLD, fontSize=14, leading=18,
                                  spaceBefore=6, spaceAfter=4, keepWithNext=True),
        "caution": ParagraphStyle("caution", parent=base, backColor=colors.HexColor(CAUTION_BG), borderPadding=4,
                                  spaceBefore=4, spaceAfter=8),
        "warning": ParagraphStyle("warning", parent=base, backColor=colors.HexColor(WARNING_BG), borderPadding=3,
                                  spaceBefore=2, spaceAfter=6),
        "disclaimer": ParagraphStyle("disclaimer", parent=base, fontName=FONT_BOLD, backColor=colors.HexColor(
            "#fff3cd"), borderPadding=4, spaceBefore=4, spaceAfter=8),
    }


def _text(value: Any) -> str:
    """``value`` as Paragraph markup (escaped)."""
    return escape(str(value))


def _pct(p: Any) -> str:
    return "not covered by this model" if p is None else f"{100 * float(p):.1f}%"


def _table(rows: list[list[str]], widths: list[float], styles: dict[str, Any], bold_rows: set[int] = frozenset(),
           header: bool = True) -> Any:
    """A grid table of escaped text cells that wrap in their columns (the first row a header)."""
    from reportlab.lib import colors
    from reportlab.platypus import Paragraph, Table, TableStyle

    cells = [[Paragraph(_text(c), styles["cell_bold"] if (header and i == 0) or i in bold_rows else styles["cell"])
              for c in row] for i, row in enumerate(rows)]
    table = Table(cells, colWidths=widths, repeatRows=1 if header else 0, hAlign="LEFT")
    commands = [("GRID", (0, 0), (-1, -1), 0.5, colors.HexColor(GRID)), ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 3)]
    if header:
        commands.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor(HEAD_BG)))
    table.setStyle(TableStyle(commands))
    return table


def _image(rgb: np.ndarray, max_w: float, max_h: float) -> Any:
    """An RGB array as a flowable image, scaled to fit ``max_w`` x ``max_h`` points (aspect kept)."""
    from reportlab.platypus import Image

    h, w = rgb.shape[:2]
    scale = min(max_w / w, max_h / h)
    return Image(io.BytesIO(png_bytes(rgb)), width=w * scale, height=h * scale, hAlign="LEFT")


def _created_words(created_utc: str) -> str:
    """``2026-01-02T10:11:12+00:00`` -> ``2026-01-02 10:11:12 UTC``."""
    try:
        return _dt.datetime.fromisoformat(created_utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return created_utc


def _models_line(a: dict[str, Any]) -> str:
    """Every model that answered for this image, with its version (and runtime) where the record has them."""
    def named(role: str, m: Any) -> str | None:
        if not m:
            return None
        if isinstance(m, dict):
            version = f" v{m['version']}" if m.get("version") else ""
            version += f" revision {m['revision']}" if m.get("revision") is not None else ""
            runtime = f" ({m['runtime']})" if m.get("runtime") else ""
            return f"{role}: {m.get('id', '')}{version}{runtime}"
        return f"{role}: {m}"

    parts = [named("plane", a.get("model")), named("brain sub-plane", (a.get("brain_plane") or {}).get("model")),
             named("normal vs abnormal", (a.get("brain_findings") or {}).get("model")),
             named("detector", (a.get("detections") or {}).get("model")),
             named("measurement", (a.get("measurement") or {}).get("model"))]
    return "; ".join(p for p in parts if p)


def _footer(image_name: str) -> Any:
    """Every page's footer: report, image name (shortened in the middle to fit), page number; the disclaimer."""
    def draw(canvas: Any, doc: Any) -> None:
        from reportlab.lib.units import mm
        from reportlab.pdfbase.pdfmetrics import stringWidth

        canvas.saveState()
        canvas.setFont(FONT, 7.5)
        canvas.setFillGray(0.35)
        left = MARGIN_MM * mm
        name, keep = image_name, len(image_name)
        while keep > 8 and stringWidth(f"fetalscope report · {name} · page {doc.page}", FONT, 7.5) > doc.width:
            keep -= 4
            name = image_name[:keep // 2] + "…" + image_name[-(keep // 2):]
        canvas.drawString(left, 11 * mm, f"fetalscope report · {name} · page {doc.page}")
        canvas.drawString(left, 7.5 * mm, DISCLAIMER)
        canvas.restoreState()
    return draw


def _verdict(a: dict[str, Any], styles: dict[str, Any], width: float) -> list[Any]:
    from reportlab.platypus import Paragraph

    p = a.get("plane_probability")
    out = [Paragraph(f"Predicted plane: {_text(a.get('plane'))}" + ("" if p is None else f" ({_pct(p)})"),
                     styles["verdict"])]
    rows = [["class", "probability"]] + [[c["label"], _pct(c["probability"])] for c in a.get("probabilities", [])]
    top = {i + 1 for i, c in enumerate(a.get("probabilities", [])) if c["label"] == a.get("plane")}
    out.append(_table(rows, [0.5 * width, 0.3 * width], styles, bold_rows=top))
    sub = a.get("brain_plane")
    if sub:
        text = f"<b>Brain sub-plane:</b> {_text(sub.get('label', ''))}"
        if sub.get("probability") is not None:
            text += f" ({_pct(sub['probability'])})"
        if sub.get("note"):
            text += f" — {_text(sub['note'])}"
        out.append(Paragraph(text, styles["body"]))
    ood = a.get("ood") or {}
    if ood:
        out.append(Paragraph(f"<b>Looks like ultrasound:</b> {'no' if ood.get('flag') else 'yes'} "
                             f"(out-of-distribution score {float(ood.get('score', 0)):.2f})", styles["body"]))
    return out


def _findings(a: dict[str, Any], styles: dict[str, Any], width: float) -> list[Any]:
    from reportlab.platypus import Paragraph

    f = a.get("brain_findings")
    if not f:
        return []
    caution = f"⚠ Model status: {_text(f.get('status') or '')}." + (f" {_text(f['warning'])}" if f.get("warning")
                                                                     else "")
    rows = [["class", "probability"]] + [[c["label"], _pct(c["probability"])] for c in f.get("probabilities") or []]
    top = {i + 1 for i, c in enumerate(f.get("probabilities") or []) if c["label"] == f.get("label")}
    model = f.get("model") or {}
    return [Paragraph("Normal vs abnormal (brain)", styles["h2"]), Paragraph(caution, styles["caution"]),
            _table(rows, [0.5 * width, 0.3 * width], styles, bold_rows=top),
            Paragraph(f"model {_text(model.get('id', ''))} v{_text(model.get('version', ''))}", styles["small"])]


def _measurement(a: dict[str, Any], styles: dict[str, Any], width: float) -> list[Any]:
    from reportlab.platypus import Paragraph

    m = a.get("measurement")
    if m is None:
        skipped = a.get("measurement_skipped")
        return [Paragraph("Measurement", styles["h2"]), Paragraph(f"Not measured: {_text(skipped)}", styles["body"])] \
            if skipped else []
    out = [Paragraph(f"Measurement: {_text(m.get('measurement') or 'none')}", styles["h2"]),
           Paragraph(f"quality: {_text(m.get('quality'))}, model {_text((m.get('model') or {}).get('id', ''))}"
                     + (f", pixel size {m['pixel_size_mm']} mm ({_text(m.get('pixel_size_source', ''))})"
                        if m.get("pixel_size_mm") else ""), styles["body"])]
    if m.get("measurement"):
        out.append(_table([["quantity", "value"], *[list(r) for r in measurement_rows(m)]],
                          [0.55 * width, 0.35 * width], styles))
    out += [Paragraph(f"note: {_text(flag)}", styles["warning"]) for flag in m.get("flags") or []]
    return out


def _quality(a: dict[str, Any], styles: dict[str, Any], width: float) -> list[Any]:
    from reportlab.platypus import Paragraph

    q = a.get("quality")
    if q is None:
        return []
    out = [Paragraph("Acquisition checklist", styles["h2"]), Paragraph(_text(quality_summary(q)), styles["body"])]
    rows = quality_rows(q)
    if rows:
        out.append(_table([["criterion", "result", "measured (expected)", "advice"], *[list(r) for r in rows]],
                          [0.2 * width, 0.1 * width, 0.3 * width, 0.4 * width], styles))
    return out


def _detections(a: dict[str, Any], styles: dict[str, Any], width: float) -> list[Any]:
    from reportlab.platypus import Paragraph

    det = a.get("detections")
    if det is None:
        return []
    rows = [["structure", "score", "box (x0, y0, x1, y1) px"]] + [
        [d["label"], f"{float(d['score']):.2f}", ", ".join(f"{v:.0f}" for v in d["xyxy"])]
        for d in det.get("boxes") or []]
    out = [Paragraph("Detections", styles["h2"]), Paragraph(f"detector {_text(det.get('model', ''))}", styles["body"])]
    if len(rows) > 1:
        out.append(_table(rows, [0.35 * width, 0.15 * width, 0.4 * width], styles))
    else:
        out.append(Paragraph("No structure found above the operating threshold.", styles["body"]))
    return out


def _explanations(analysis: Any, styles: dict[str, Any], width: float) -> list[Any]:
    """The explanation maps (each with its colour scale) in a grid of three, captioned with method, model and
    class (and the findings model's warning)."""
    from reportlab.platypus import Paragraph, Table, TableStyle

    if not analysis.explanations:
        return []
    col = width / 3
    cells = []
    for result in analysis.explanations:
        e = result.to_dict()
        model_id = (e.get("model") or {}).get("id")
        caption = (f"<b>{_text(e['title'])}</b>" + (f" of {_text(model_id)}" if model_id else "")
                   + f": class {_text(e['target_label'])}"
                   + ("" if e.get("probability") is None else f" (p = {float(e['probability']):.2f})")
                   + (f"<br/><i>{_text(e['warning'])}</i>" if e.get("warning") else ""))
        cells.append([_image(result.with_scale(), col - 8, col), Paragraph(caption, styles["small"])])
    rows = [cells[i:i + 3] for i in range(0, len(cells), 3)]
    rows[-1] += [""] * (3 - len(rows[-1]))
    grid = Table(rows, colWidths=[col] * 3, hAlign="LEFT")
    grid.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
    return [Paragraph("Explanations", styles["h2"]), grid]


def report_story(analysis: Any, width: float, height: float) -> list[Any]:
    """The flowables of the report of ``analysis`` for a frame of ``width`` x ``height`` points."""
    from reportlab.platypus import KeepTogether, Paragraph, Spacer

    styles = _styles()
    record = report_record(analysis)
    a = record["analysis"]
    story: list[Any] = [
        Paragraph("fetalscope report", styles["title"]),
        Paragraph(_text(record.get("disclaimer") or DISCLAIMER), styles["disclaimer"]),
        _table([["Image", str(a.get("image", ""))],
                ["Size", f"{a.get('width')} x {a.get('height')} px"],
                ["Date and time", _created_words(str(record.get("created_utc", "")))],
                ["fetalscope", f"version {record.get('fetalscope_version', '')}"],
                ["Models", _models_line(a)]], [0.2 * width, 0.8 * width], styles, header=False),
        Spacer(1, 6),
    ]
    if analysis.loaded is not None:
        drawn = a.get("detections") is not None or a.get("measurement") is not None
        story.append(_image(analysis.plot(labels=False), width, 0.36 * height))
        what = " with what was found (measurement, detections) drawn on it" if drawn else ""
        story.append(Paragraph(f"The image{what}", styles["small"]))
    story += _verdict(a, styles, width)
    story += _findings(a, styles, width)
    story += [KeepTogether(_measurement(a, styles, width)), KeepTogether(_detections(a, styles, width)),
              KeepTogether(_quality(a, styles, width))]
    story += _explanations(analysis, styles, width)
    warnings = list(dict.fromkeys(listed_warnings(a)))  # the findings and sub-plane cautions are shown above
    if warnings:
        story.append(Paragraph("Warnings", styles["h2"]))
        story += [Paragraph(f"⚠ {_text(w)}", styles["warning"]) for w in warnings]
    story += [Spacer(1, 8), Paragraph(_text(record.get("disclaimer") or DISCLAIMER), styles["disclaimer"])]
    return story


def report_pdf(analysis: Any, path: str | Path | None = None) -> bytes:
    """The PDF report of ``analysis`` (A4) as bytes; also written to ``path`` when given."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.platypus import SimpleDocTemplate

    _register_fonts()
    buffer = io.BytesIO()
    margin = MARGIN_MM * mm
    doc = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=margin, rightMargin=margin, topMargin=margin,
                            bottomMargin=margin + 2 * mm, title=f"fetalscope report: {analysis.image}",
                            author="fetalscope", subject="Fetal ultrasound analysis (research use only)",
                            creator="fetalscope")
    footer = _footer(str(analysis.image))
    doc.build(report_story(analysis, doc.width, doc.height), onFirstPage=footer, onLaterPages=footer)
    data = buffer.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data
