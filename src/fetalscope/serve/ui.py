"""The Gradio UI: Analyse tab, Model performance, Ablation and Overview pages.

The Analyse tab takes an upload (drag-and-drop or click; PNG, JPEG, TIFF, BMP, DICOM) or a click on
an example, and shows the predicted plane with a confidence bar for every class, the brain
sub-plane, the normal/abnormal brain findings under a banner with their model card's warning,
warnings (unsure model, not ultrasound, classes not covered), one tab per explanation method
(fast ones at once, slow ones on demand, each with its time; when the image has brain findings, a
picker chooses whether they explain the plane or the normal/abnormal prediction, and each map's label
and caption name the model and class, repeating the findings model's warning), detections when a
detector is loaded, and a downloadable report (JSON, HTML and a print-ready PDF). Several files dropped at
once are analysed one by one with a progress bar ("image i of n") and listed in a batch view
(:mod:`fetalscope.serve.ui_batch`): a row per file (a bad file gets its own error row), thumbnails that open
an image in the detailed view, and a side-by-side comparison. The widget empties after each upload, so the
next drop replaces the last.

Gradio's upload widget stores each file in its temporary folder before our code sees it; the
server points that folder at a private in-memory location (see :mod:`fetalscope.serve.app`) and the
handler deletes the file as soon as its bytes are read. Everything else stays in the session state.
Import this module only after :func:`fetalscope.serve.app.configure_gradio_environment` (Gradio reads
its settings at import).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from fetalscope.errors import FetalscopeError
from fetalscope.imaging.display import DISPLAY_SIDE, thumbnail
from fetalscope.pipeline.analysis import Analysis
from fetalscope.pipeline.cautions import listed_warnings
from fetalscope.pipeline.explanation import METHOD_TITLES, ExplanationResult
from fetalscope.pipeline.html_report import (
    FINDINGS_CSS,
    explanation_caution_html,
    findings_html,
    measurement_rows,
    report_json,
    report_record,
    subplane_html,
)
from fetalscope.pipeline.measure import WHAT_BY_PLANE
from fetalscope.serve.examples import Example, gallery_examples, vet_examples
from fetalscope.serve.pages import ablation_page, overview_page, performance_page
from fetalscope.serve.service import Service, safe_name
from fetalscope.serve.settings import ServeSettings
from fetalscope.serve.ui_batch import (
    BATCH_CSS,
    NOT_ANALYSED,
    BatchItem,
    analyse_file,
    analyse_uploads,
    analysed,
    compare_choices,
    compare_html,
    gallery_items,
    table_html,
)
from fetalscope.serve.ui_dicom import sr_file
from fetalscope.serve.ui_quality import add_quality_section
from fetalscope.serve.ui_video import add_video_tab

LOG = logging.getLogger("fetalscope.serve")
UI_METHODS = ("gradcam", "gradcam++", "guided_backprop", "guided_gradcam", "integrated_gradients",
              "occlusion", "lime")
FAST_METHODS = ("gradcam", "gradcam++", "guided_backprop")
PREDICTED = "(predicted class)"
PLANE_CHOICE = "Plane"
FINDINGS_CHOICE = "Normal vs abnormal (demonstration)"
EXPLAIN_CHOICES = {PLANE_CHOICE: "plane", FINDINGS_CHOICE: "brain_findings"}  # radio label -> service model
MODEL_WORDS = {"plane": "plane model", "brain_findings": "normal-vs-abnormal model (demonstration)"}
SESSION_TTL_S = 1800
FILE_TYPES = [".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".dicom"]

CSS = """
.fs-warning { background: #fff4e5; color: #1f1300; border-left: 4px solid #f59e0b; padding: 6px 12px;
              margin: 6px 0; }
.fs-error { background: #fdecea; color: #2a0505; border-left: 4px solid #dc2626; padding: 6px 12px; margin: 6px 0; }
.fs-warning *, .fs-error * { color: inherit; }
.fs-disclaimer { font-size: 0.9em; opacity: 0.85; }
#performance-page img, #ablation-page img, #overview-page img { max-width: 760px; width: 100%; }
"""
CSS += FINDINGS_CSS + BATCH_CSS


MEASURE_HINT = ("Head biometry runs on brain (trans-thalamic) images, the cardiothoracic ratio on thorax "
                "(four-chamber) images; choose one and press **Measure** to run it on any image.")


def _measurement_markdown(record: dict[str, Any]) -> str:
    """The numbers of a measurement record as Markdown (all from the record; nothing typed in)."""
    lines = [f"**{record.get('measurement', '')}** measurement, quality: `{record.get('quality')}`, "
             f"model `{(record.get('model') or {}).get('id', '')}`", "", "| quantity | value |", "|---|---|"]
    lines += [f"| {label} | {value} |" for label, value in measurement_rows(record)]
    if record.get("measurement") == "cardiothoracic":
        for part in ("heart", "thorax"):
            e = record.get(part)
            if e:
                lines.append(f"- {part}: centre ({e['cx']:.0f}, {e['cy']:.0f}) px, semi-axes {e['a']:.0f} x "
                             f"{e['b']:.0f} px, angle {e['angle_deg']:.0f} deg")
    for flag in record.get("flags") or []:
        lines.append(f"- note: {flag}")
    return "\n".join(lines)


def _slug(method: str) -> str:
    return method.replace("+", "p").replace("_", "-")


def _display(rgb: np.ndarray) -> np.ndarray:
    return thumbnail(rgb, DISPLAY_SIDE)


def _verdict_markdown(a: dict[str, Any]) -> str:
    lines = []
    p = a.get("plane_probability")
    lines.append(f"## {a.get('plane')}" + ("" if p is None else f" &mdash; {100 * float(p):.1f}%"))
    sub = a.get("brain_plane")
    if sub:
        lines.append(subplane_html(sub))
    elif a.get("plane") == "Fetal brain":
        lines.append("**Brain sub-plane:** no sub-plane model is installed, so none is given.")
    findings = a.get("brain_findings")
    if findings:
        lines.append(findings_html(findings))
    elif a.get("plane") == "Fetal brain" and a.get("brain_findings_skipped"):
        lines.append(f"**Normal vs abnormal:** not run: {a['brain_findings_skipped']}.")
    for w in listed_warnings(a):  # the findings and sub-plane cautions are shown above
        cls = "fs-error" if "does not look like" in w else "fs-warning"
        lines.append(f"<div class='{cls}'>&#9888; {w}</div>")
    model = a.get("model", {})
    total = a.get("timings_ms", {}).get("total")
    lines.append(f"<span class='fs-disclaimer'>Image `{a.get('image')}` ({a.get('width')} x {a.get('height')} px) "
                 f"&middot; model `{model.get('id')}` v{model.get('version')} ({model.get('runtime')})"
                 + ("" if total is None else f" &middot; {float(total):.0f} ms") + "</span>")
    return "\n\n".join(lines)


def _label_value(a: dict[str, Any]) -> dict[str, float]:
    return {c["label"]: float(c["probability"]) for c in a.get("probabilities", []) if c["probability"] is not None}


def _model_words(record: dict[str, Any]) -> str:
    """The kind of model an explanation record explains, in words (``plane model``)."""
    return MODEL_WORDS.get(str(record.get("explains", "plane")), "model")


def _explained_model(record: dict[str, Any]) -> str:
    """Which model an explanation record explains, in words (``plane model `sononet-planes```)."""
    return f"{_model_words(record)} `{(record.get('model') or {}).get('id', '')}`"


def _explain_info(record: dict[str, Any]) -> str:
    """Caption of an explanation: method, model and class explained, probability, time; for the brain
    findings model also its card's status and warning (and a note for a non-brain image)."""
    p = record.get("probability")
    text = (f"**{record['title']}** of the {_explained_model(record)} for class **{record['target_label']}**"
            + ("" if p is None else f" (p = {p:.2f})") + f" &mdash; computed in **{record['seconds']:.2f} s**")
    if record.get("explains", "plane") != "plane":
        text += "\n\n" + explanation_caution_html(record)
    return text


def _explain_image(result: ExplanationResult) -> Any:
    """The overlay with a label naming the method, the model and the class it explains."""
    record = result.to_dict()
    label = f"{record['title']} \u00b7 {_model_words(record)} \u00b7 class {record['target_label']}"
    return gr.update(value=result.with_scale(), label=label)


def _detections_markdown(record: dict[str, Any]) -> str:
    """The boxes of a detection record as a Markdown table (all from the record)."""
    rows = "\n".join(f"| {d['label']} | {d['score']:.2f} | {', '.join(f'{v:.0f}' for v in d['xyxy'])} |"
                     for d in record["boxes"])
    table = ("| structure | score | box (x0, y0, x1, y1) |\n|---|---|---|\n" + rows) if rows else \
        "No structure found above the operating threshold."
    return f"Detector `{record.get('model')}`:\n\n{table}"


def _blank_image(method: str) -> Any:
    return gr.update(value=None, label=METHOD_TITLES[method])


def _pending_info(method: str) -> str:
    return (f"Not computed yet: press **Compute {METHOD_TITLES[method]}** (on a CPU this takes from a few "
            "seconds to about a minute).")


def model_folders(service: Service) -> list[Path]:
    """Bundle folders whose cards the Overview shows: the loaded plane model, then the other bundled models."""
    from fetalscope.models.bundle import available_bundles, resolve_bundle

    folders = [Path(service.session.bundle.path)]
    for name in available_bundles():
        folder = resolve_bundle(name)
        if folder.resolve() != folders[0].resolve():
            folders.append(folder)
    return folders


def _private_dir(parent: str | None) -> Path:
    return Path(tempfile.mkdtemp(prefix="report-", dir=parent))


def build_ui(service: Service, settings: ServeSettings) -> Any:
    """The Gradio Blocks of the app (mounted by :func:`fetalscope.serve.app.create_app`)."""
    session = service.session

    def classify(path: Path) -> tuple[str, float]:
        return session.plane(service.load(path.read_bytes(), path.name, upload=False))

    examples: list[Example] = vet_examples(gallery_examples(settings.examples_dir), classify)
    thumbs = []
    for ex in examples:
        try:
            thumbs.append((thumbnail(service.load(ex.path.read_bytes(), ex.path.name, upload=False).pixels, 200),
                           ex.caption))
        except (OSError, FetalscopeError):
            thumbs.append((np.zeros((8, 8, 3), np.uint8), f"{ex.caption} (unreadable)"))
    classes = list(session.classes)
    perf = performance_page(session.bundle.path, settings.eval_dir)
    ablation = ablation_page(settings.ablation_dir, session.bundle.path)
    overview = overview_page(model_folders(service))

    n_methods = len(UI_METHODS)

    def empty_outputs(message: str) -> tuple:
        blanks: list[Any] = []
        for m in UI_METHODS:
            blanks += [_blank_image(m), "" if m in FAST_METHODS else _pending_info(m)]
        return (None, None, message, None, *blanks, None, "", None, None, "",
                gr.update(visible=False, value=PLANE_CHOICE), gr.update(choices=[PREDICTED, *classes], value=PREDICTED),
                gr.skip())

    def explained_model(state: dict[str, Any], choice: str | None) -> str:
        """The session model the explanation picker asks for (the plane model unless findings are shown)."""
        which = EXPLAIN_CHOICES.get(str(choice), "plane")
        return which if which == "plane" or state["analysis"].brain_findings else "plane"

    def explain_into(state: dict[str, Any], method: str, target: str | None, which: str = "plane") -> tuple:
        analysis: Analysis = state["analysis"]
        result = session.explain(analysis.loaded, method, None if target in (None, PREDICTED) else target,
                                 model=which, analysis=analysis)
        analysis.add_explanation(result)
        return _explain_image(result), _explain_info(result.to_dict())

    def fast_explanations(state: dict[str, Any], target: str | None, which: str) -> list[Any]:
        """Fast methods computed now, slow ones left for their Compute button (the analysis keeps only the
        explanations of the current class and model)."""
        state["analysis"].explanations = []
        outputs: list[Any] = []
        for m in UI_METHODS:
            if m in FAST_METHODS:
                try:
                    outputs += list(explain_into(state, m, target, which))
                except FetalscopeError as exc:
                    outputs += [_blank_image(m), f"<div class='fs-error'>{exc}</div>"]
            else:
                outputs += [_blank_image(m), _pending_info(m)]
        return outputs

    def analyse_bytes(data: bytes, name: str, target: str | None, choice: str | None = PLANE_CHOICE,
                      upload: bool = True) -> tuple:
        try:
            analysis = analyse_file(service, data, name, upload=upload)
        except FetalscopeError as exc:
            return empty_outputs(f"<div class='fs-error'>{NOT_ANALYSED}: {exc}</div>")
        return show_analysis(analysis, target, choice)

    def show_analysis(analysis: Analysis, target: str | None, choice: str | None = PLANE_CHOICE) -> tuple:
        """The detailed view of one analysis: image, verdict, bars, fast explanations, detections, measurement."""
        image = analysis.loaded
        state: dict[str, Any] = {"analysis": analysis, "created": time.time()}
        record = analysis.to_dict()
        which = explained_model(state, choice)  # keep the user's pick while findings are shown
        choices = session.explain_classes(which)
        target = target if target in choices else PREDICTED
        outputs = fast_explanations(state, target, which)
        picker = gr.update(visible=bool(analysis.brain_findings),
                           value=FINDINGS_CHOICE if which == "brain_findings" else PLANE_CHOICE)
        target_update = gr.update(choices=[PREDICTED, *choices], value=target)
        det_img, det_md = None, ""
        if analysis.detections is not None:
            det_img, det_md = _display(analysis.plot(show=("detections",), labels=False)), \
                _detections_markdown(analysis.detections)
        elif session.detector_available:
            det_md = "Brain-structure detection runs on brain images; press **Detect** to run it anyway."
        else:
            det_md = f"No brain-structure detector is loaded: {session.detector_info().get('reason')}"
        meas_img, meas_md = None, MEASURE_HINT
        if analysis.measurement is not None:
            meas_img = _display(analysis.plot(show=("measurement",), labels=False))
            meas_md = _measurement_markdown(analysis.measurement)
        # the measurement selector shows what was measured (the Measure button re-runs or switches it)
        measured = (analysis.measurement or {}).get("measurement")
        meas_choice = gr.update(value=measured) if measured else gr.skip()
        return (state, _display(image.pixels), _verdict_markdown(record), _label_value(record),
                *outputs, det_img, det_md, None, meas_img, meas_md, picker, target_update, meas_choice)

    def on_measure(state: dict[str, Any] | None, what: str, pixel_size: str | None) -> tuple:
        if not state:
            return state, None, "Upload an image first."
        analysis: Analysis = state["analysis"]
        given = str(pixel_size or "").strip().replace(",", ".") or None  # the session's rule checks the number
        try:
            analysis.measurement = session.measure(analysis.loaded, what, given, analysis=analysis)
        except FetalscopeError as exc:
            return state, None, f"<div class='fs-error'>No {what} measurement: {exc}</div>"
        return (state, _display(analysis.plot(show=("measurement",), labels=False)),
                _measurement_markdown(analysis.measurement))

    def batch_outputs(items: list[BatchItem]) -> tuple:
        """The batch view of an upload: shown for two files or more, hidden (and emptied) otherwise."""
        if len(items) < 2:
            return (None, gr.update(visible=False), "", gr.update(value=None, selected_index=None),
                    gr.update(choices=[], value=[]), "")
        pair = analysed(items)[:2]  # the first two analysed images start side by side
        return ({"items": items, "created": time.time()}, gr.update(visible=True), table_html(items),
                gr.update(value=gallery_items(items), selected_index=None),
                gr.update(choices=compare_choices(items), value=pair), compare_html(items, pair))

    def on_upload(paths: list[str] | str | None, target: str | None, choice: str | None,
                  progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008 - Gradio's progress hook
        files = [Path(p) for p in ([paths] if isinstance(paths, str) else paths or [])]
        # each upload copy goes as soon as it is read; the widget is emptied so the next drop replaces this one
        items = analyse_uploads(service, files, progress if len(files) > 1 else None)
        first = next((item for item in items if item.analysis is not None), None)
        if first is not None:
            detail = show_analysis(first.analysis, target, choice)
        else:
            detail = empty_outputs("" if not items else f"<div class='fs-error'>{NOT_ANALYSED}: {items[0].error}</div>")
        return (*detail, None, *batch_outputs(items))

    def on_example(evt: gr.SelectData, target: str | None, choice: str | None) -> tuple:
        index = evt.index if isinstance(evt.index, int) else evt.index[0]
        ex = examples[int(index)]
        return (*analyse_bytes(ex.path.read_bytes(), ex.path.name, target, choice, upload=False),
                *batch_outputs([]))

    def on_batch_pick(evt: gr.SelectData, batch: dict[str, Any] | None, target: str | None,
                      choice: str | None) -> tuple:
        """A thumbnail of the batch picked: its analysis (already made) opens in the detailed view."""
        if not batch:
            return tuple(gr.skip() for _ in analysis_outputs)
        index = evt.index if isinstance(evt.index, int) else evt.index[0]
        item = batch["items"][analysed(batch["items"])[int(index)]]
        return show_analysis(item.analysis, target, choice)

    def on_compare(batch: dict[str, Any] | None, chosen: list[int] | None) -> str:
        return compare_html(batch["items"], chosen) if batch else ""

    def on_target(state: dict[str, Any] | None, target: str | None, choice: str | None) -> tuple:
        if not state:
            return (state, *[gr.skip()] * (2 * n_methods))
        return (state, *fast_explanations(state, target, explained_model(state, choice)))

    def on_explain_model(state: dict[str, Any] | None, choice: str | None) -> tuple:
        """Another prediction to explain: its classes in the class picker, its fast maps now, slow ones lazily."""
        if not state:
            return (state, gr.skip(), *[gr.skip()] * (2 * n_methods))
        which = explained_model(state, choice)
        target_update = gr.update(choices=[PREDICTED, *session.explain_classes(which)], value=PREDICTED)
        return (state, target_update, *fast_explanations(state, PREDICTED, which))

    def make_compute(method: str):
        def compute(state: dict[str, Any] | None, target: str | None, choice: str | None) -> tuple:
            if not state:
                return state, None, "Upload an image or pick an example first."
            try:
                img, info = explain_into(state, method, target, explained_model(state, choice))
            except FetalscopeError as exc:
                return state, _blank_image(method), f"<div class='fs-error'>{exc}</div>"
            return state, img, info
        return compute

    def on_detect(state: dict[str, Any] | None) -> tuple:
        if not state:
            return state, None, "Upload an image or pick an example first."
        if not session.detector_available:
            return state, None, f"No brain-structure detector is loaded: {session.detector_info().get('reason')}"
        analysis: Analysis = state["analysis"]
        analysis.detections = session.detect(analysis.loaded)
        return (state, _display(analysis.plot(show=("detections",), labels=False)),
                _detections_markdown(analysis.detections))

    def on_report(state: dict[str, Any] | None) -> list[str] | None:
        if not state:
            return None
        analysis: Analysis = state["analysis"]
        folder = _private_dir(os.environ.get("GRADIO_TEMP_DIR"))
        stem = Path(safe_name(analysis.image, "image")).stem or "image"
        json_path = folder / f"fetalscope-report-{stem}.json"
        html_path = folder / f"fetalscope-report-{stem}.html"
        pdf_path = folder / f"fetalscope-report-{stem}.pdf"
        json_path.write_text(report_json(report_record(analysis)), encoding="utf-8")
        html_path.write_text(analysis.to_html(), encoding="utf-8")
        analysis.to_pdf(pdf_path)
        sr_path = sr_file(analysis, folder, stem)  # a DICOM upload's SR beside the reports
        return [str(json_path), str(html_path), str(pdf_path), *([sr_path] if sr_path else [])]

    with gr.Blocks(title="fetalscope", analytics_enabled=False, delete_cache=(300, SESSION_TTL_S)) as demo:
        gr.Markdown("# fetalscope &mdash; fetal ultrasound plane analysis\n"
                    "<span class='fs-disclaimer'>Research and education use only. **Not a medical device.** "
                    "API docs: [/docs](/docs)</span>")
        state = gr.State(None, time_to_live=SESSION_TTL_S)
        with gr.Tabs():
            with gr.Tab("Analyse", id="analyse"):
                with gr.Row():
                    with gr.Column(scale=2):
                        upload = gr.File(label="Drop ultrasound images here or click to upload: one or "
                                               "several at once (PNG, JPEG, TIFF, BMP, DICOM)",
                                         file_types=FILE_TYPES, type="filepath", file_count="multiple",
                                         elem_id="upload")
                        gallery_label = ("Examples: click one to analyse it" if thumbs else
                                         "No examples: none of the example images is one this model handles "
                                         "(start with --examples FOLDER to show your own)")
                        gallery = gr.Gallery(value=thumbs, label=gallery_label, columns=3,
                                             allow_preview=False, height=300, elem_id="examples",
                                             interactive=False)
                        target = gr.Dropdown([PREDICTED, *classes], value=PREDICTED, label="Explain class",
                                             elem_id="target")
                    with gr.Column(scale=3):
                        shown = gr.Image(label="Image", interactive=False, height=360, elem_id="input-image",
                                         format="png")
                        verdict = gr.Markdown(elem_id="verdict")
                        probs = gr.Label(label="Confidence for every class", num_top_classes=len(classes),
                                         elem_id="probabilities")
                batch_state = gr.State(None, time_to_live=SESSION_TTL_S)
                with gr.Group(visible=False, elem_id="batch") as batch_group:
                    gr.Markdown("### This upload: every image")
                    batch_table = gr.HTML(elem_id="batch-table")
                    batch_gallery = gr.Gallery(label="Click an image to open it in the detailed view",
                                               columns=6, allow_preview=False, height=250, object_fit="contain",
                                               elem_id="batch-gallery", interactive=False)
                    compare_pick = gr.CheckboxGroup([], value=[], label="Side by side: tick the images to compare",
                                                    elem_id="compare-pick")
                    compare_view = gr.HTML(elem_id="compare")
                gr.Markdown("### Explanations")
                explain_model = gr.Radio(list(EXPLAIN_CHOICES), value=PLANE_CHOICE, label="Explain which prediction",
                                         visible=False, elem_id="explain-model",
                                         info="Normal vs abnormal is a demonstration model; see its warning.")
                method_outputs: list[Any] = []
                compute_buttons: dict[str, Any] = {}
                with gr.Tabs():
                    for m in UI_METHODS:
                        with gr.Tab(METHOD_TITLES[m], id=f"tab-{_slug(m)}"):
                            img = gr.Image(label=METHOD_TITLES[m], interactive=False, height=320,
                                           elem_id=f"explain-{_slug(m)}", format="png")
                            info = gr.Markdown("" if m in FAST_METHODS else _pending_info(m),
                                               elem_id=f"explain-{_slug(m)}-info")
                            if m not in FAST_METHODS:
                                compute_buttons[m] = gr.Button(f"Compute {METHOD_TITLES[m]}",
                                                               elem_id=f"compute-{_slug(m)}")
                            method_outputs += [img, info]
                with gr.Accordion("Brain structure detection", open=session.detector_available):
                    det_img = gr.Image(label="Detections", interactive=False, height=320, elem_id="detections",
                                       format="png")
                    det_md = gr.Markdown(elem_id="detections-info")
                    detect_btn = gr.Button("Detect", elem_id="detect")
                with gr.Accordion("Measurement (head biometry / cardiothoracic ratio)", open=True):
                    meas_img = gr.Image(label="Fitted ellipses", interactive=False, height=320,
                                        elem_id="measurement", format="png")
                    meas_md = gr.Markdown(MEASURE_HINT, elem_id="measurement-info")
                    with gr.Row():
                        meas_what = gr.Dropdown(list(WHAT_BY_PLANE.values()), value="head",
                                                label="Measure", elem_id="measure-what")
                        # a text box: a number field shows 0 when empty, which reads as a pixel size
                        meas_px = gr.Textbox(label="Pixel size (mm per pixel), for millimetres", value="",
                                             placeholder="e.g. 0.1 (a DICOM's own spacing is used when empty)",
                                             max_lines=1, elem_id="measure-pixel-size")
                        meas_btn = gr.Button("Measure", elem_id="measure")
                add_quality_section(session, state, _display)
                with gr.Row():
                    report_btn = gr.Button("Build report (JSON, HTML, PDF)", variant="primary", elem_id="report")
                    report_files = gr.File(label="Report", file_count="multiple", interactive=False,
                                           elem_id="report-files")
            add_video_tab(service, _display)
            with gr.Tab("Model performance", id="performance"):
                gr.Markdown(perf.markdown, elem_id="performance-page")
            with gr.Tab("Ablation", id="ablation"):
                gr.Markdown(ablation.markdown, elem_id="ablation-page")
            with gr.Tab("Overview", id="overview"):
                gr.Markdown(overview.markdown, elem_id="overview-page")

        analysis_outputs = [state, shown, verdict, probs, *method_outputs, det_img, det_md, report_files,
                            meas_img, meas_md, explain_model, target, meas_what]
        batch_outputs_ = [batch_state, batch_group, batch_table, batch_gallery, compare_pick, compare_view]
        upload.upload(on_upload, [upload, target, explain_model], [*analysis_outputs, upload, *batch_outputs_])
        gallery.select(on_example, [target, explain_model], [*analysis_outputs, *batch_outputs_])
        batch_gallery.select(on_batch_pick, [batch_state, target, explain_model], analysis_outputs)
        compare_pick.input(on_compare, [batch_state, compare_pick], [compare_view])
        # .input (the user's pick), not .change: an analysis resetting these must not explain twice
        target.input(on_target, [state, target, explain_model], [state, *method_outputs])
        explain_model.input(on_explain_model, [state, explain_model], [state, target, *method_outputs])
        for m, button in compute_buttons.items():
            i = UI_METHODS.index(m)
            button.click(make_compute(m), [state, target, explain_model],
                         [state, method_outputs[2 * i], method_outputs[2 * i + 1]])
        detect_btn.click(on_detect, [state], [state, det_img, det_md])
        meas_btn.click(on_measure, [state, meas_what, meas_px], [state, meas_img, meas_md])
        report_btn.click(on_report, [state], [report_files])
    demo.queue(default_concurrency_limit=max(1, settings.max_concurrent))
    return demo

