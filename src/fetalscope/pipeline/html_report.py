"""The report of one :class:`~fetalscope.pipeline.analysis.Analysis`: JSON (its record) and a self-contained
HTML page (image, prediction with every class probability, brain findings with their card's warning,
warnings, explanation maps, detections, measurement), plus the HTML pieces the app shows too (the findings
banner, the explanation caution).

Both are built in memory from the analysis; images are embedded as ``data:`` URIs, so the HTML file opens
anywhere without network access.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from typing import Any

import numpy as np

from fetalscope import __version__
from fetalscope.explain.overlay import png_bytes
from fetalscope.imaging.display import DISPLAY_SIDE, thumbnail
from fetalscope.models.cards import model_label
from fetalscope.pipeline.cautions import listed_warnings

DISCLAIMER = "Research and education use only. Not a medical device; not for diagnosis or clinical decisions."
FINDINGS_CSS = """
.fs-findings { border: 2px solid #b45309; border-radius: 6px; padding: 8px 12px; margin: 8px 0; }
.fs-findings-warning { background: #fde68a; color: #111; font-weight: 600; padding: 6px 10px; margin: 0 0 6px 0; }
"""


def data_uri(rgb: np.ndarray | bytes, mime: str = "image/png") -> str:
    """``data:`` URI of an image array (encoded as PNG) or of encoded bytes."""
    data = rgb if isinstance(rgb, bytes) else png_bytes(rgb)
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def status_banner(status: Any, warning: Any, css: str = "fs-findings-warning") -> str:
    """The banner of a model card's caution: "Model status: <status>. <warning>" (escaped)."""
    text = f"&#9888; Model status: {html.escape(str(status or ''))}."
    if warning:
        text += f" {html.escape(str(warning))}"
    return f"<div class='{css}'>{text}</div>"


def findings_html(findings: dict[str, Any]) -> str:
    """The brain findings of an analysis as an HTML block: a banner with the model card's status and warning
    (verbatim from the record), then every class probability and the model. Every value is escaped."""
    esc = html.escape
    banner = status_banner(findings.get("status"), findings.get("warning"))
    probs = " &middot; ".join(
        f"{'<b>' if c['label'] == findings.get('label') else ''}{esc(str(c['label']))} "
        f"{100 * float(c['probability']):.1f}%{'</b>' if c['label'] == findings.get('label') else ''}"
        for c in findings.get("probabilities") or [])
    model = findings.get("model") or {}
    return (f"<div class='fs-findings'>{banner}<div><b>Normal vs abnormal (brain):</b> {probs} "
            f"&mdash; model <code>{esc(str(model.get('id', '')))}</code> v{esc(str(model.get('version', '')))}"
            "</div></div>")


def explanation_caution_html(record: dict[str, Any]) -> str:
    """The caution under an explanation of the brain findings model: its card's status and warning (verbatim
    from the explanation record) and the note when the image is not one the model is meant for."""
    out = status_banner(record.get("status"), record.get("warning"), "fs-findings-warning fs-explain-warning")
    note = record.get("note")
    if note:
        out += f"<div class='fs-warning'>&#9888; {html.escape(str(note))}</div>"
    return out


def report_record(analysis: Any) -> dict[str, Any]:
    """The JSON report of an :class:`~fetalscope.pipeline.analysis.Analysis` (typed loosely: the analysis module
    imports this one): its record (explanations, detections and measurement included)."""
    return {
        "schema": "fetalscope.report/2",
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "fetalscope_version": __version__,
        "disclaimer": DISCLAIMER,
        "analysis": analysis.to_dict(),
    }


def report_json(record: dict[str, Any]) -> str:
    return json.dumps(record, indent=2, ensure_ascii=False, default=str)


def _esc(value: Any) -> str:
    return html.escape(str(value))


def probability_rows(analysis: dict[str, Any]) -> str:
    """Table rows (class, percent, bar) of every class probability of an analysis record; the predicted class
    row has class ``top``; a class the model does not cover says so. For the report and the app."""
    rows = []
    for item in analysis.get("probabilities", []):
        p = item.get("probability")
        if p is None:
            rows.append(f"<tr><td>{_esc(item['label'])}</td>"
                        "<td colspan='2'><em>not covered by this model</em></td></tr>")
            continue
        top = " class='top'" if item["label"] == analysis.get("plane") else ""
        rows.append(f"<tr{top}><td>{_esc(item['label'])}</td><td>{100 * p:.1f}%</td>"
                    f"<td><div class='bar' style='width:{max(0.5, 100 * p):.1f}%'></div></td></tr>")
    return "\n".join(rows)


def subplane_html(sub: dict[str, Any]) -> str:
    """The brain sub-plane of an analysis in one line of HTML: label, probability and the model's caveat
    (escaped), for the report and the app."""
    text = f"<b>Brain sub-plane:</b> {_esc(sub.get('label', ''))}"
    if sub.get("probability") is not None:
        text += f" ({100 * float(sub['probability']):.1f}%)"
    if sub.get("note"):
        text += f" &mdash; <em>{_esc(sub['note'])}</em>"
    return text


def quality_summary(record: dict[str, Any]) -> str:
    """One line on the acquisition checklist: its score and grade, or why the image was not assessed."""
    if not record.get("assessed"):
        return str(record.get("reason") or "not assessed")
    what = {"head": "head (trans-thalamic) plane", "cardiothoracic": "four-chamber view"}.get(
        record.get("what") or "", record.get("what") or "")
    return f"{what}: score {record.get('score')} / 100, grade {record.get('grade')}"


def quality_rows(record: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The acquisition checklist as (criterion, pass/FAIL, measured value against the expected range, advice)
    rows, from the record ``Session.quality`` made (nothing typed in)."""
    def fmt(value: Any) -> str:
        return "n/a" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)

    verdict = {True: "pass", False: "FAIL", None: "not judged"}
    return [(str(c.get("label") or c["id"]), verdict[c.get("passed")],
             f"{fmt(c.get('value'))} (expected {c.get('expected')})", str(c.get("advice") or ""))
            for c in record.get("criteria") or []]


def measurement_rows(record: dict[str, Any]) -> list[tuple[str, str]]:
    """The numbers of a measurement record as (quantity, value) rows: HC/BPD/OFD/GA for the head, the three
    cardiothoracic ratios for the heart (all from the record; nothing typed in)."""
    def fmt(value: Any, digits: int) -> str:
        return "n/a" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))

    if record.get("measurement") == "cardiothoracic":
        ctr = record.get("ctr") or {}
        rows = [(f"cardiothoracic ratio ({k})", fmt(ctr.get(k), 3)) for k in ("circumference", "area", "diameter")]
        interval, coverage = record.get("ctr_interval"), record.get("ctr_interval_coverage")
        if interval and coverage:  # calibrated out of fold against the reference CTR (the bundle's card)
            rows.insert(1, (f"circumference ratio, {coverage:.0%} interval", f"{interval[0]:.3f} to {interval[1]:.3f}"))
        return rows + measured_by(record)
    rows = [(label, fmt(record.get(key), 1)) for key, label in (
        ("hc_mm", "HC (mm)"), ("bpd_mm", "BPD (mm)"), ("ofd_mm", "OFD (mm)"))]
    interval, coverage = record.get("hc_interval_mm"), record.get("hc_interval_coverage")
    if interval and coverage:  # calibrated out of fold against the reference HC (the bundle's card)
        rows.insert(1, (f"HC {coverage:.0%} interval (mm)", f"{interval[0]:.1f} to {interval[1]:.1f}"))
    ga = record.get("ga")  # weeks and days, e.g. 20w3d, as obstetrics writes it
    weeks = record.get("ga_weeks")
    rows.append(("gestational age (Hadlock, from HC)",
                 "n/a" if ga is None else f"{ga} ({fmt(weeks, 1)} weeks)" if weeks is not None else str(ga)))
    return rows + measured_by(record)


def measured_by(record: dict[str, Any]) -> list[tuple[str, str]]:
    """A ("measured by", model) row naming the segmentation bundle and its revision, when the record has one."""
    model = record.get("model")
    return [("measured by", model_label(model))] if isinstance(model, dict) and model.get("id") else []


def report_html(analysis: Any) -> str:
    """Self-contained HTML report of ``analysis``: its image, what it found drawn on it (detections and
    measurement), every class probability, findings, warnings, explanation overlays and the JSON record."""
    record = report_record(analysis)
    a = record["analysis"]
    model = a.get("model", {})
    warnings = "".join(f"<li>{_esc(w)}</li>" for w in listed_warnings(a))
    sub_html = f"<p>{subplane_html(a['brain_plane'])}</p>" if a.get("brain_plane") else ""
    findings_block = findings_html(a["brain_findings"]) if a.get("brain_findings") else ""
    ood = a.get("ood") or {}
    ood_html = ""
    if ood:
        ood_html = (f"<p><b>Looks like ultrasound:</b> {'no' if ood.get('flag') else 'yes'} "
                    f"(out-of-distribution score {float(ood.get('score', 0)):.2f})</p>")
    maps = []
    for result in analysis.explanations:
        e = result.to_dict()
        model_id = (e.get("model") or {}).get("id")
        of_model = f" of {_esc(model_id)}" if model_id else ""
        caution = f"<br><em>{_esc(e['warning'])}</em>" if e.get("warning") else ""
        maps.append(f"<figure><img src='{data_uri(result.with_scale())}' alt='{_esc(e['method'])}'>"
                    f"<figcaption>{_esc(e['title'])}{of_model}: {_esc(e['target_label'])}, "
                    f"{float(e.get('seconds', 0)):.2f} s{caution}</figcaption></figure>")
    drawn = analysis.loaded is not None and (a.get("detections") is not None or a.get("measurement") is not None)
    found_pic = f"<img src='{data_uri(analysis.plot(labels=False))}' alt='findings drawn'>" if drawn else ""
    det_html = ""
    det = a.get("detections")
    if det is not None:
        rows = "".join(f"<tr><td>{_esc(d['label'])}</td><td>{float(d['score']):.2f}</td>"
                       f"<td>{_esc(', '.join(f'{v:.0f}' for v in d['xyxy']))}</td></tr>" for d in det.get("boxes", []))
        det_html = (f"<h2>Detections</h2><p>detector {_esc(det.get('model', ''))}</p><table><tr><th>structure</th>"
                    f"<th>score</th><th>box (x0, y0, x1, y1)</th></tr>{rows}</table>")
    meas_html = ""
    meas = a.get("measurement")
    if meas is not None:
        rows = "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in measurement_rows(meas))
        flags = "".join(f"<li>{_esc(f)}</li>" for f in meas.get("flags") or [])
        meas_html = (f"<h2>Measurement: {_esc(meas.get('measurement', ''))}</h2><p>quality: "
                     f"{_esc(meas.get('quality'))}, model {_esc((meas.get('model') or {}).get('id', ''))}</p>"
                     f"<table>{rows}</table>" + (f"<ul>{flags}</ul>" if flags else ""))
    quality_html = ""
    quality = a.get("quality")
    if quality is not None:
        marks = {"pass": "&#10003; pass", "FAIL": "&#10007; FAIL", "not judged": "&#8211; not judged"}
        rows = "".join(f"<tr class='{'pass' if ok == 'pass' else 'fail' if ok == 'FAIL' else 'none'}'><td>"
                       f"{_esc(name)}</td><td>{marks[ok]}</td><td>{_esc(value)}</td>"
                       f"<td>{_esc(advice)}</td></tr>" for name, ok, value, advice in quality_rows(quality))
        table = (f"<table><tr><th>criterion</th><th>result</th><th>measured (expected)</th><th>advice</th></tr>"
                 f"{rows}</table>") if rows else ""
        quality_html = f"<h2>Acquisition checklist</h2><p>{_esc(quality_summary(quality))}</p>{table}"
    image_html = ""
    if analysis.loaded is not None:
        image_html = (f'<img src="{data_uri(thumbnail(analysis.loaded.pixels, DISPLAY_SIDE))}" alt="input image" '
                      'style="max-height:420px">')
    probability = a.get("plane_probability")
    prob_text = "" if probability is None else f" ({100 * float(probability):.1f}%)"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fetalscope report: {_esc(a.get('image', ''))}</title>
<style>
body {{ font-family: sans-serif; max-width: 980px; margin: 2em auto; color: #222; }}
.disclaimer {{ background: #fff3cd; border: 1px solid #e0c36a; padding: .6em 1em; }}
.warn {{ background: #fdecea; border: 1px solid #e3a49c; padding: .4em 1em; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 2px 8px; text-align: left; }}
tr.top td {{ font-weight: bold; }} .bar {{ background: #3b82f6; height: 12px; min-width: 2px; }}
td:last-child {{ width: 320px; }} tr.fail td {{ color: #a61b1b; }} img {{ max-width: 100%; }}
pre {{ white-space: pre-wrap; overflow-wrap: anywhere; max-width: 100%; }}
figure {{ display: inline-block; width: 300px; margin: 6px; vertical-align: top; }} figure img {{ width: 300px; }}
{FINDINGS_CSS}</style></head><body>
<h1>fetalscope report</h1>
<p class="disclaimer">{_esc(record.get('disclaimer', DISCLAIMER))}</p>
<p><b>Image:</b> {_esc(a.get('image', ''))} ({_esc(a.get('width'))} x {_esc(a.get('height'))} px)<br>
<b>Model:</b> {_esc(model.get('id', ''))} version {_esc(model.get('version', ''))}
({_esc(model.get('runtime', ''))})<br>
<b>Created:</b> {_esc(record.get('created_utc', ''))}, fetalscope {_esc(record.get('fetalscope_version', ''))}</p>
{image_html}{found_pic}
<h2>Predicted plane: {_esc(a.get('plane'))}{prob_text}</h2>
{sub_html}{findings_block}{ood_html}
{f'<ul class="warn">{warnings}</ul>' if warnings else ''}
<table><tr><th>class</th><th>probability</th><th></th></tr>
{probability_rows(a)}
</table>
{'<h2>Explanations</h2>' + ''.join(maps) if maps else ''}
{det_html}{meas_html}{quality_html}
<h2>Record</h2><pre>{_esc(report_json(record))}</pre>
</body></html>
"""
