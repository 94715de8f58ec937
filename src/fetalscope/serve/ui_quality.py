"""The app's "Acquisition quality" section of the Analyse view: the checklist with ticks and crosses, value
against expected range, the advice, the score and grade, and the image with the sector, ellipses and boxes the
image was judged on. Everything shown comes from ``Session.quality``'s record."""

from __future__ import annotations

from typing import Any

from fetalscope.errors import FetalscopeError
from fetalscope.pipeline.quality import CARD_DIR, draw_quality
from fetalscope.pipeline.session import Session

QUALITY_HINT = ("Press **Check acquisition** for the standard-plane checklist: the head (trans-thalamic) checklist "
                "for brain images, the four-chamber one for thorax images (or choose one).")
MARKS = {True: "✓", False: "✗", None: "–"}


def _value(c: dict[str, Any]) -> str:
    if c["passed"] is None:
        return "not assessed"
    return "not found" if c["value"] is None else f"{c['value']:.3g}"


def _compliance(c: dict[str, Any]) -> str:
    """The criterion's graded compliance as a percentage (what the score averages); blank when not judged."""
    return "" if c.get("compliance") is None else f"{100 * c['compliance']:.0f}%"


def quality_markdown(record: dict[str, Any]) -> str:
    """The checklist of a quality record as Markdown (every number from the record)."""
    if not record.get("assessed"):
        return f"**Not assessed.** {record.get('reason') or ''}"
    passed = sum(c["passed"] is True for c in record["criteria"])
    judged = sum(c["passed"] is not None for c in record["criteria"])
    lines = [f"**Score {record['score']} / 100: {record['grade']}** ({record['what']} checklist, {passed} of "
             f"{judged} criteria passed; plane model: {record['plane']} {record['plane_probability']:.2f})", "",
             "| | criterion | value | expected | compliance | advice |", "| --- | --- | --- | --- | --- | --- |"]
    for c in record["criteria"]:
        lines.append(f"| {MARKS[c['passed']]} | {c['label'] or c['id']} | {_value(c)} | {c['expected']} | "
                     f"{_compliance(c)} | {c['advice'] or ''} |")
    lines += ["", "Compliance: 1 inside the expected range, falling to 0 outside it; the score is their weighted "
              "mean. Grades: standard >= 80, acceptable 60-79, not standard < 60. Thresholds and their sources: "
              f"card version {record['thresholds']}; research use only, not a medical device."]
    return "\n".join(lines)


def card_markdown() -> str:
    """The threshold card and the held-out study as written by the scripts (nothing typed in here)."""
    parts = [(CARD_DIR / name).read_text(encoding="utf-8") for name in ("study.md", "thresholds.md")
             if (CARD_DIR / name).is_file()]
    return "\n\n".join(parts) or "The threshold card is missing from this installation."


def add_quality_section(session: Session, state: Any, display: Any) -> None:
    """The section's components and its button, inside the caller's Blocks (``state`` holds the analysis;
    ``display`` sizes an image for the screen)."""
    import gradio as gr

    with gr.Accordion("Acquisition quality (standard-plane checklist)", open=True):
        image = gr.Image(label="Judged on: sector, ellipses, boxes", interactive=False, height=320,
                         elem_id="quality-image", format="png")
        text = gr.Markdown(QUALITY_HINT, elem_id="quality-info")
        with gr.Row():
            what = gr.Dropdown(["auto", "head", "cardiothoracic"], value="auto", label="Checklist",
                               elem_id="quality-what")
            button = gr.Button("Check acquisition", elem_id="quality")
        with gr.Accordion("How the checklist was calibrated and tested", open=False):
            gr.Markdown(card_markdown(), elem_id="quality-card")

    def on_quality(current: dict[str, Any] | None, choice: str) -> tuple:
        if not current:
            return current, None, "Upload an image first."
        analysis = current["analysis"]
        try:
            record = session.quality(analysis.loaded, choice, analysis=analysis).to_dict()
        except FetalscopeError as exc:
            return current, None, f"<div class='fs-error'>No quality check: {exc}</div>"
        analysis.quality = record
        return current, display(draw_quality(analysis.loaded.pixels, record)), quality_markdown(record)

    button.click(on_quality, [state, what], [state, image, text])
