"""The downloadable report of one analysis: JSON (the records) and a self-contained HTML page
(image, prediction with every class probability, brain findings with their card's warning, warnings,
explanation maps, detections).

Both are built in memory from the records the app already computed; images are embedded as
``data:`` URIs, so the HTML file opens anywhere without network access.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
from typing import Any

import numpy as np

from fetalscope import __version__
from fetalscope.serve.render import FINDINGS_CSS, data_uri, findings_html

DISCLAIMER = "Research and education use only. Not a medical device; not for diagnosis or clinical decisions."


def report_record(analysis: dict[str, Any], explanations: list[dict[str, Any]],
                  detection: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON report: the analysis record, the explanation records (without maps) and detections."""
    return {
        "schema": "fetalscope.report/1",
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "fetalscope_version": __version__,
        "disclaimer": DISCLAIMER,
        "analysis": analysis,
        "explanations": explanations,
        "detection": detection,
    }


def report_json(record: dict[str, Any]) -> str:
    return json.dumps(record, indent=2, ensure_ascii=False, default=str)


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _prob_rows(analysis: dict[str, Any]) -> str:
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


def report_html(record: dict[str, Any], image_rgb: np.ndarray,
                overlays: dict[str, np.ndarray] | None = None, detection_rgb: np.ndarray | None = None) -> str:
    """Self-contained HTML of a report record; ``overlays`` maps method name -> overlay image."""
    a = record["analysis"]
    model = a.get("model", {})
    warnings = "".join(f"<li>{_esc(w)}</li>" for w in a.get("warnings", []))
    sub = a.get("brain_plane") or {}
    sub_html = ""
    if sub:
        sub_html = f"<p><b>Brain sub-plane:</b> {_esc(sub.get('label', ''))}"
        if sub.get("probability") is not None:
            sub_html += f" ({100 * float(sub['probability']):.1f}%)"
        if sub.get("note"):
            sub_html += f" <em>{_esc(sub['note'])}</em>"
        sub_html += "</p>"
    findings_block = findings_html(a["brain_findings"]) if a.get("brain_findings") else ""
    ood = a.get("ood") or {}
    ood_html = ""
    if ood:
        ood_html = (f"<p><b>Looks like ultrasound:</b> {'no' if ood.get('flag') else 'yes'} "
                    f"(out-of-distribution score {float(ood.get('score', 0)):.2f})</p>")
    maps = []
    for e in record.get("explanations", []):
        img = (overlays or {}).get(e["method"])
        pic = f"<img src='{data_uri(img)}' alt='{_esc(e['method'])}'>" if img is not None else ""
        model_id = (e.get("model") or {}).get("id")
        of_model = f" of {_esc(model_id)}" if model_id else ""
        caution = f"<br><em>{_esc(e['warning'])}</em>" if e.get("warning") else ""
        maps.append(f"<figure>{pic}<figcaption>{_esc(e.get('title', e['method']))}{of_model}: "
                    f"{_esc(e.get('target_label'))}, {float(e.get('seconds', 0)):.2f} s{caution}</figcaption></figure>")
    det_html = ""
    det = record.get("detection")
    if det:
        rows = "".join(f"<tr><td>{_esc(d['label'])}</td><td>{float(d['score']):.2f}</td>"
                       f"<td>{_esc(', '.join(f'{v:.0f}' for v in d['xyxy']))}</td></tr>" for d in det.get("boxes", []))
        pic = f"<img src='{data_uri(detection_rgb)}' alt='detections'>" if detection_rgb is not None else ""
        det_html = (f"<h2>Detections</h2>{pic}<table><tr><th>structure</th><th>score</th><th>box (x0, y0, x1, y1)"
                    f"</th></tr>{rows}</table>")
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
td:last-child {{ width: 320px; }} img {{ max-width: 100%; }}
figure {{ display: inline-block; width: 300px; margin: 6px; vertical-align: top; }} figure img {{ width: 300px; }}
{FINDINGS_CSS}</style></head><body>
<h1>fetalscope report</h1>
<p class="disclaimer">{_esc(record.get('disclaimer', DISCLAIMER))}</p>
<p><b>Image:</b> {_esc(a.get('image', ''))} ({_esc(a.get('width'))} x {_esc(a.get('height'))} px)<br>
<b>Model:</b> {_esc(model.get('id', ''))} version {_esc(model.get('version', ''))}
({_esc(model.get('runtime', ''))})<br>
<b>Created:</b> {_esc(record.get('created_utc', ''))}, fetalscope {_esc(record.get('fetalscope_version', ''))}</p>
<img src="{data_uri(image_rgb)}" alt="input image" style="max-height:420px">
<h2>Predicted plane: {_esc(a.get('plane'))}{prob_text}</h2>
{sub_html}{findings_block}{ood_html}
{f'<ul class="warn">{warnings}</ul>' if warnings else ''}
<table><tr><th>class</th><th>probability</th><th></th></tr>
{_prob_rows(a)}
</table>
{'<h2>Explanations</h2>' + ''.join(maps) if maps else ''}
{det_html}
<h2>Record</h2><pre>{_esc(report_json(record))}</pre>
</body></html>
"""
