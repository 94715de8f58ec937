"""Small picture helpers of the app, all in memory: thumbnails, ``data:`` URIs and the brain findings banner.
(Explanation overlays come from :mod:`fetalscope.explain.overlay`, detection boxes from
:func:`fetalscope.detect.draw_boxes`.)"""

from __future__ import annotations

import base64
import html
from typing import Any

import cv2
import numpy as np

from fetalscope.explain.overlay import png_bytes


def data_uri(rgb: np.ndarray | bytes, mime: str = "image/png") -> str:
    """``data:`` URI of an image array (encoded as PNG) or of encoded bytes."""
    data = rgb if isinstance(rgb, bytes) else png_bytes(rgb)
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def thumbnail(rgb: np.ndarray, side: int = 160) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


FINDINGS_CSS = """
.fs-findings { border: 2px solid #b45309; border-radius: 6px; padding: 8px 12px; margin: 8px 0; }
.fs-findings-warning { background: #fde68a; color: #111; font-weight: 600; padding: 6px 10px; margin: 0 0 6px 0; }
"""


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
