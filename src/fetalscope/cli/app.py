"""The `fetalscope` verbs. Each verb parses options and calls one function of the package."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from fetalscope import __version__
from fetalscope.cli.batch import batch
from fetalscope.cli.common import console, friendly_errors, one_line, progress_bar, say, split_list, write_json
from fetalscope.cli.dicom_out import CaptureOpt, DicomOutputs, FhirOpt, OverlayOpt, SegOpt, SrOpt
from fetalscope.cli.quality import quality as quality_verb
from fetalscope.errors import BadInputError

app = typer.Typer(
    name="fetalscope",
    help="Fetal ultrasound analysis: plane classification, explanations, detection, biometry. "
    "Research and education use only; not a medical device.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: no <bool> placeholder on flags, nothing cut off with an ellipsis
)

PathsArg = Annotated[list[Path], typer.Argument(help="Image files and/or folders (PNG, JPEG, TIFF, BMP, DICOM).")]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Bundled model name or bundle folder.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fetalscope {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False) -> None:
    """fetalscope command line."""


app.command(name="batch")(batch)


# --------------------------------------------------------------------------------------------- train
@app.command()
@friendly_errors
def train(
    data: Annotated[str | None, typer.Option(help="FETAL_PLANES_DB folder (CSV + Images/) or class folders.")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML/JSON file of training options.")] = None,
    task: Annotated[str | None, typer.Option(help="planes | brain-planes (FETAL_PLANES_DB).")] = None,
    model: Annotated[str | None, typer.Option(help="Architecture from the registry (see `fetalscope models`).")] = None,
    out: Annotated[str | None, typer.Option(help="Output bundle folder.")] = None,
    epochs1: Annotated[int | None, typer.Option("--phase1-epochs", help="Frozen-backbone epochs.")] = None,
    epochs2: Annotated[int | None, typer.Option("--phase2-epochs", help="Fine-tuning epochs.")] = None,
    image_size: Annotated[int | None, typer.Option(help="Square input size override.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size.")] = None,
    pretrained: Annotated[bool | None, typer.Option("--pretrained/--no-pretrained")] = None,
    max_images: Annotated[int | None, typer.Option(help="Cap images per split (smoke runs).")] = None,
    resume: Annotated[bool, typer.Option(help="Resume an interrupted run in --out.")] = False,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
) -> None:
    """Two-phase transfer learning; writes a model bundle with card.json and an evaluation report."""
    from fetalscope.cli.progress import training_bars
    from fetalscope.train.classifier.config import TrainConfig
    from fetalscope.train.classifier.trainer import train as run_train

    options = _collect(locals(), config)
    cfg = TrainConfig.from_dict(options)
    with training_bars() as bars:
        result = run_train(cfg, progress=bars)
    s = result.report.get("summary", {})
    say(f"bundle: {result.bundle}")
    say(f"test accuracy {s.get('accuracy')}, weighted F1 {s.get('weighted_f1')} "
                  f"({result.seconds:.0f} s)")


def _collect(params: dict, config: Path | None) -> dict:
    from dataclasses import fields

    from fetalscope.train.classifier.config import TrainConfig, read_config_file

    known = {f.name for f in fields(TrainConfig)}
    base: dict = {}
    if config is not None:
        base = read_config_file(config)
    mapping = {"epochs1": "phase1_epochs", "epochs2": "phase2_epochs"}
    for key, value in params.items():
        if key in ("config",) or value is None or (key == "resume" and value is False):
            continue
        if mapping.get(key, key) in known:
            base[mapping.get(key, key)] = value
    if "data" not in base:
        raise BadInputError("give --data PATH (a FETAL_PLANES_DB folder or class folders) or a --config file")
    return base


@app.command()
@friendly_errors
def ablate(
    config: Annotated[Path | None, typer.Option(help="YAML/JSON file of base training options.")] = None,
    data: Annotated[str | None, typer.Option(help="Dataset folder (overrides the config).")] = None,
    variants: Annotated[str, typer.Option(help="Comma-separated, from: baseline, no_se, frozen_only, no_augment, "
                                          "no_pretrain, no_balance, label_smoothing, backbone=NAME")] =
    "baseline,no_se,frozen_only,no_augment",
    out: Annotated[str, typer.Option(help="Output folder for the variants and the table.")] = "runs/ablation",
    model: Annotated[str | None, typer.Option(help="Base architecture.")] = None,
    task: Annotated[str | None, typer.Option(help="Task.")] = None,
    epochs1: Annotated[int | None, typer.Option("--phase1-epochs")] = None,
    epochs2: Annotated[int | None, typer.Option("--phase2-epochs")] = None,
    image_size: Annotated[int | None, typer.Option()] = None,
    max_images: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Run named variants on the same split and write ablation.json + ablation.md."""
    from fetalscope.cli.progress import training_bars
    from fetalscope.train.classifier.ablate import run_ablation
    from fetalscope.train.classifier.config import TrainConfig

    params = dict(locals())
    params.pop("variants")
    params.pop("out")
    cfg = TrainConfig.from_dict(_collect(params, config))
    names = split_list(variants)
    with training_bars(variants=len(names)) as bars:
        table = run_ablation(cfg, names, out, progress=bars, on_variant=bars.variant_done if bars else None)
    say(f"ablation table: {Path(out) / 'ablation.md'} ({len(table['variants'])} variants)")


# ------------------------------------------------------------------------------------------ evaluate
@app.command()
@friendly_errors
def evaluate(
    model: ModelOpt = "sononet-planes",
    data: Annotated[str, typer.Option(help="FETAL_PLANES_DB folder or class folders.")] = ...,  # type: ignore[assignment]
    task: Annotated[str, typer.Option(help="planes | brain-planes.")] = "planes",
    split: Annotated[str, typer.Option(help="test | val | all.")] = "test",
    out: Annotated[str, typer.Option(help="Report folder.")] = "runs/evaluate",
    max_images: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Evaluate a bundle on a labelled dataset: report.json, report.md and plots."""
    from fetalscope.cli.progress import image_bar
    from fetalscope.evaluate.bundle_eval import evaluate_bundle_on_data

    with image_bar("evaluate") as bar:
        report = evaluate_bundle_on_data(model, data, task=task, split=split, out_dir=Path(out),
                                         max_images=max_images, on_images_done=bar)
    s = report.get("summary", {})
    say(f"report: {Path(out) / 'report.md'}  accuracy {s.get('accuracy')}  "
                  f"weighted F1 {s.get('weighted_f1')}")


# ------------------------------------------------------------------------------------------- predict
@app.command()
@friendly_errors
def predict(
    paths: PathsArg,
    model: ModelOpt = "sononet-planes",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Results file (.csv or .json).")] = None,
    runtime: Annotated[str, typer.Option(help="auto | torch | onnx | onnx-int8 (the bundle's model.int8.onnx)")
                       ] = "auto",
    frame: Annotated[int | None, typer.Option(help="Frame of multi-frame DICOM/TIFF.")] = None,
    detect: Annotated[bool, typer.Option("--detect", help="Also detect brain structures on brain images.")] = False,
    measure: Annotated[str | None, typer.Option(help="Also measure: auto (head on brain, CTR on thorax images), "
                                                     "head or cardiothoracic.")] = None,
    pixel_size: Annotated[float | None, typer.Option("--pixel-size", help="Millimetres per pixel (measure).")]
    = None,
    pdf: Annotated[Path | None, typer.Option("--pdf", help="Also write a print-ready PDF report per image into "
                                                           "this folder (fetalscope-report-<image>.pdf).")] = None,
    quality: Annotated[bool, typer.Option("--quality", help="Also grade the acquisition (the checklist of "
                                                            "`fetalscope quality`, auto) on head and four-chamber "
                                                            "images.")] = False,
    sr: SrOpt = None,
    overlay: OverlayOpt = False,
    seg: SegOpt = False,
    fhir: FhirOpt = None,
    capture: CaptureOpt = False,
) -> None:
    """Classify images: a row per image with the predicted plane and every class probability."""
    from fetalscope.imaging import iter_image_paths
    from fetalscope.pipeline.measure import check_pixel_size, measurement_choice
    from fetalscope.pipeline.session import Session

    pixel_size = check_pixel_size(pixel_size, "--pixel-size")
    if measure is not None:
        measure = measurement_choice(measure, "--measure")
    if output is not None and output.suffix.lower() not in (".csv", ".json"):
        raise BadInputError(f"--output must end in .csv or .json, got '{output.name}'")
    if pdf is not None and pdf.exists() and not pdf.is_dir():
        raise BadInputError(f"--pdf must be a folder, and {pdf} is a file")
    dicom_out = DicomOutputs(sr=sr, fhir=fhir, overlay=overlay, seg=seg, capture=capture)
    files = list(iter_image_paths(paths))
    session = Session(model, runtime=runtime, detector="brain-structures" if detect or quality else None)
    results, errors, pdfs = [], [], []
    with progress_bar(len(files), "predict") as advance:
        for f in files:
            try:
                results.append(session.analyse(f, name=str(f), frame=frame, detect="auto" if detect else False,
                                               measure=measure, pixel_size_mm=pixel_size, quality=quality))
                if pdf is not None:
                    pdfs.append(_pdf_path(pdf, f, pdfs))
                    results[-1].to_pdf(pdfs[-1])
                dicom_out.write(results[-1], f, drawing=lambda a=results[-1]: a.plot(max_side=None))
            except BadInputError as exc:
                errors.append({"image": str(f), "error": str(exc)})
                console.print(f"[yellow]skipped[/] {one_line(exc)}", highlight=False)
            advance(1)
    if not results:
        raise BadInputError(f"none of the {len(files)} input(s) could be analysed; nothing written")
    if output is None:
        for a in results:
            line = f"{a.image}\t{a.plane}\t{a.plane_probability:.3f}" + ("\t(unsure)" if a.uncertain else "")
            if a.ood.get("flag"):  # the plane of a photo or a page means nothing: say so on its line
                line += "\t(NOT ULTRASOUND: " + "; ".join(a.ood.get("reasons") or []) + ")"
            if a.quality is not None and a.quality.get("assessed"):
                line += f"\tquality: {a.quality['score']} ({a.quality['grade']})"
            if a.brain_findings:
                f = a.brain_findings
                line += f"\tbrain findings: {f['label']} {f['probability']:.3f} [{f['status']}]"
            typer.echo(line)
        for warning in dict.fromkeys(a.brain_findings.get("warning") for a in results if a.brain_findings):
            if warning:
                console.print(f"[yellow]brain findings:[/] {escape(warning)}", highlight=False)
        if pdfs:
            say(f"wrote {len(pdfs)} PDF report(s) to {pdf}")
        if dicom_out.written:
            say(f"wrote {dicom_out.summary()}")
        return
    if output.suffix.lower() == ".json":
        write_json(output, {"results": [a.to_dict() for a in results], "errors": errors})
    else:
        rows = [a.to_row() for a in results]
        columns = list(dict.fromkeys(k for row in rows for k in row))  # brain findings columns appear on brain rows
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns + ["error"], restval="")
            writer.writeheader()
            writer.writerows(rows)
            for e in errors:
                writer.writerow({"image": e["image"], "error": e["error"]})
    say(f"wrote {len(results)} result(s) to {output}" + (f", {len(errors)} skipped" if errors else "")
        + (f"; {len(pdfs)} PDF report(s) to {pdf}" if pdfs else "")
        + (f"; {dicom_out.summary()}" if dicom_out.written else ""))


def _pdf_path(folder: Path, image: Path, taken: list[Path]) -> Path:
    """``folder/fetalscope-report-<image stem>.pdf``, numbered when two images share a stem."""
    folder.mkdir(parents=True, exist_ok=True)
    path, n = folder / f"fetalscope-report-{image.stem}.pdf", 1
    while path in taken:
        n += 1
        path = folder / f"fetalscope-report-{image.stem}-{n}.pdf"
    return path


# -------------------------------------------------------------------------------------------- export
@app.command()
@friendly_errors
def export(
    model: Annotated[str, typer.Argument(help="Bundle name or folder.")],
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                help="ONNX path (default: bundle/model.onnx).")] = None,
    int8: Annotated[bool, typer.Option(
        "--int8", help="Also write model.int8.onnx (static int8; opt-in runtime 'onnx-int8'), calibrated on "
        "--calibration. An existing model.onnx is kept as it is.")] = False,
    calibration: Annotated[list[Path] | None, typer.Option(
        "--calibration", help="Real images/folders like those the model will see, to calibrate int8 "
        "(repeatable; keep them out of your test set).")] = None,
    calibration_limit: Annotated[int, typer.Option(
        help="At most this many calibration images (evenly thinned).")] = 200,
) -> None:
    """Export a bundle to ONNX and check that ONNX Runtime matches PyTorch (max |dp| <= 1e-4);
    with --int8 also its static int8 twin."""
    from fetalscope.models.bundle import load_bundle
    from fetalscope.models.onnx_export import check_parity, export_onnx

    if int8 and not calibration:
        raise BadInputError("--int8 needs --calibration IMAGES_OR_FOLDER: real images like those the model "
                            "will see (not your test images) to set the int8 ranges")
    if int8 and output is not None:
        raise BadInputError("--int8 writes model.int8.onnx next to the bundle's model.onnx; drop --output")
    bundle = load_bundle(model)
    if int8 and bundle.onnx_path is not None:
        console.print(f"kept {bundle.onnx_path} (fp32, the parity path)")
    else:
        path = export_onnx(bundle, output)
        parity = check_parity(bundle, onnx_path=path)
        console.print(f"wrote {path}; max |p_onnx - p_torch| = {parity.max_abs_prob_diff:.2e} on "
                      f"{parity.n_images} random inputs")
        if not parity.passed:
            raise typer.Exit(code=1)
    if int8:
        from fetalscope.models.quantize import (
            calibration_paths,
            int8_agreement,
            preprocess_images,
            quantize_bundle,
        )

        files = calibration_paths(calibration or [], calibration_limit)
        inputs = preprocess_images(files, bundle.preprocess)
        record = quantize_bundle(bundle, files, calibration=inputs)
        agree = int8_agreement(bundle, inputs)
        console.print(f"wrote {bundle.path / record['file']} ({record['size_bytes'] / 1e6:.2f} MB), calibrated on "
                      f"{len(files)} image(s); on them int8 vs fp32 ONNX: top-1 agreement "
                      f"{agree['top1_agreement']:.3f}, max |dp| {agree['max_abs_prob_diff']:.3f}, mean |dp| "
                      f"{agree['mean_abs_prob_diff']:.4f} (in-sample: measure held-out images with "
                      "benchmarks/bench_inference.py --images)")


@app.command("models")
@friendly_errors
def models_cmd() -> None:
    """List architectures in the registry and bundled models (read from their cards; no model is built)."""
    from fetalscope.models.architectures import architecture_names
    from fetalscope.models.cards import available_bundles, bundle_size_bytes, read_card

    typer.echo("architectures: " + ", ".join(architecture_names()))
    for name in available_bundles():
        card = read_card(name)
        revision = f" revision {card['revision']}" if card.get("revision") is not None else ""
        typer.echo(f"bundle {name}: task={card.get('task')}, version {card.get('version', 'n/a')}{revision}, "
                   f"{bundle_size_bytes(name) / 1e6:.1f} MB, classes: {', '.join(card.get('classes', []))}")


# ------------------------------------------------------------------------------------------- explain
@app.command()
@friendly_errors
def explain(
    paths: PathsArg,
    model: ModelOpt = "sononet-planes",
    methods: Annotated[str, typer.Option(help="Comma-separated, from: gradcam, gradcam++, guided_backprop, "
                                         "guided_gradcam, ig (integrated_gradients), occlusion, lime, saliency "
                                         "(e.g. gradcam,occlusion)")] = "gradcam",
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder.")] = Path("explanations"),
    target: Annotated[str | None, typer.Option(help="Class name or index to explain (default: predicted).")]
    = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="Method parameter KEY=VALUE (every chosen method that takes it) or "
                              "METHOD.KEY=VALUE (that method only), e.g. -p n_steps=64 -p occlusion.window=24. "
                              "Repeatable.")] = None,
    cmap: Annotated[str | None, typer.Option(help="Matplotlib colour map of the overlays (default: jet, "
                                                  "or a diverging map for signed maps).")] = None,
    alpha: Annotated[float, typer.Option(help="Heat-map opacity in the overlays, 0-1.")] = 0.5,
    batch_size: Annotated[int, typer.Option(help="Images explained per batch.")] = 8,
) -> None:
    """Attribution maps: overlays (.png), arrays (.npy) and index.json per image and method."""
    from fetalscope.explain.runner import parse_method_param_options
    from fetalscope.imaging import iter_image_paths
    from fetalscope.pipeline.outputs import explain_to_folder
    from fetalscope.pipeline.session import Session

    flat, per_method = parse_method_param_options(param)
    session = Session(model, brain_plane_model=None, brain_findings_model=None, detector=None)
    files = list(iter_image_paths(paths))
    with progress_bar(len(files), "explain") as advance:
        records = explain_to_folder(session, files, split_list(methods), output, target=target, params=flat,
                                    method_params=per_method, batch_size=batch_size, cmap=cmap, alpha=alpha,
                                    on_images_done=advance)
    maps = sum(len(r["explanations"]) for r in records)
    say(f"wrote {maps} explanation map(s) of {len(records)} image(s) to {output}")


@app.command("explain-eval")
@friendly_errors
def explain_eval_cmd(
    data: Annotated[Path, typer.Option(help="Folder of images (or class folders) to evaluate on.")],
    model: ModelOpt = "sononet-planes",
    methods: Annotated[str, typer.Option()] = "gradcam,guided_backprop,ig,occlusion,lime",
    output: Annotated[Path, typer.Option("--output", "-o")] = Path("runs/explain-eval"),
    n_images: Annotated[int, typer.Option(help="Images to use.")] = 20,
) -> None:
    """Faithfulness (deletion/insertion AUC vs random) and randomisation sanity checks, as a report."""
    from fetalscope.explain.evaluation import explain_eval
    from fetalscope.imaging import iter_image_paths
    from fetalscope.models.bundle import load_bundle

    files = list(iter_image_paths([data]))
    explain_eval(files, load_bundle(model), split_list(methods), output, n_images=n_images)
    say(f"report: {output / 'report.md'}")


# -------------------------------------------------------------------------------------------- detect
@app.command()
@friendly_errors
def detect(
    paths: PathsArg,
    model: ModelOpt = "brain-structures",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="JSON results file.")] = None,
    draw: Annotated[Path | None, typer.Option(help="Folder for images with boxes drawn.")] = None,
    score_threshold: Annotated[float | None, typer.Option(help="Minimum score.")] = None,
) -> None:
    """Detect brain structures (midline falx, CSP, choroid plexus): boxes as JSON, optional drawings."""
    from fetalscope.imaging import iter_image_paths
    from fetalscope.pipeline.outputs import detect_to_folder
    from fetalscope.pipeline.session import Session

    session = Session(detector=model)
    files = list(iter_image_paths(paths))
    with progress_bar(len(files), "detect") as advance:
        records = detect_to_folder(session, files, draw_dir=draw, score_threshold=score_threshold,
                                   on_images_done=advance)
    if output is None:
        typer.echo(json.dumps(records, indent=2, default=str))
    else:
        write_json(output, records)
        say(f"wrote {len(records)} record(s) to {output}")


# ------------------------------------------------------------------------------------ brain findings
@app.command("brain-findings")
@friendly_errors
def brain_findings(
    data: Annotated[Path, typer.Argument(help="YOLO export (data.yaml; boxes carry the class), split folders "
                                              "(train|val|test/<class>/) or one folder per class.")],
    out: Annotated[Path, typer.Option(help="Report folder (report.json, report.md, the split and the model).")]
    = Path("runs/brain-findings"),
    bundle: Annotated[Path | None, typer.Option(help="Also write a model bundle here (card with status, "
                                                     "warning and shortcut numbers).")] = None,
    epochs: Annotated[int, typer.Option(help="Fine-tuning epochs (phase 2).")] = 4,
    head_epochs: Annotated[int, typer.Option(help="Frozen-backbone epochs (phase 1).")] = 15,
    model: Annotated[str, typer.Option("--model", "-m", help="Architecture from the registry.")] = "efficientnet_lite0",
    image_size: Annotated[int | None, typer.Option(help="Square input size override.")] = None,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 16,
    positive: Annotated[str | None, typer.Option(help="Abnormal class for the AUCs (default: the class not "
                                                      "called 'normal').")] = None,
    name: Annotated[str, typer.Option(help="Bundle name written into the card.")] = "brain-normal-abnormal",
    preset: Annotated[str, typer.Option(help="Card words: auto (roboflow-demo for the shared Roboflow set, "
                                             "else own-data), roboflow-demo or own-data.")] = "auto",
    gradcam: Annotated[int, typer.Option(help="Test images explained with Grad-CAM (needs head boxes).")] = 60,
    lime: Annotated[int, typer.Option(help="Test images explained with LIME (slow; needs head boxes).")] = 6,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing bundle in --bundle.")] = False,
) -> None:
    """Normal vs abnormal brain: train a classifier, measure the source shortcut, write report.json + report.md."""
    from fetalscope.train.recipes.brain_findings import BrainStudyOptions, run_brain_study

    opts = BrainStudyOptions(data=data, out=out, bundle=bundle, name=name, model=model, image_size=image_size,
                             phase1_epochs=head_epochs, phase2_epochs=epochs, batch_size=batch_size,
                             positive=positive, lime=lime, gradcam=gradcam, seed=seed, preset=preset,
                             overwrite=overwrite)
    report = run_brain_study(opts)
    best = max(report["shortcut"]["nuisance_auc"].items(), key=lambda kv: kv[1]["auc"])
    say(f"report: {out / 'report.md'}  test AUC {report['model']['test_auc']}  "
                  f"non-anatomical AUC {best[1]['auc']} ({best[0]})  status: {report['status']}", highlight=False)


# ------------------------------------------------------------------------------------------- measure
@app.command()
@friendly_errors
def measure(
    paths: PathsArg,
    what: Annotated[str, typer.Option(help="auto | head | cardiothoracic (auto: chosen by the plane model).")] = "auto",
    pixel_size: Annotated[float | None, typer.Option("--pixel-size", help="Millimetres per pixel.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="JSON results file.")] = None,
    pixel_sizes: Annotated[Path | None, typer.Option(
        "--pixel-sizes", help="CSV of per-image pixel sizes: columns path (or image/filename) and pixel_size_mm; "
        "matched by path or file name. Images not listed use --pixel-size or their DICOM spacing.")] = None,
    draw: Annotated[Path | None, typer.Option(help="Folder for the images with the fitted ellipses drawn.")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the records as JSON to stdout (default: one "
                                                         "line per image; --output writes the JSON file).")]
    = False,
    sr: SrOpt = None,
    overlay: OverlayOpt = False,
    seg: SegOpt = False,
    fhir: FhirOpt = None,
    capture: CaptureOpt = False,
) -> None:
    """Head biometry (HC, BPD, OFD, gestational age) or the cardiothoracic ratio, with ellipses."""
    from fetalscope.explain.overlay import png_bytes
    from fetalscope.imaging import iter_image_paths
    from fetalscope.pipeline.analysis import draw_findings
    from fetalscope.pipeline.measure import (
        check_pixel_size,
        measurement_choice,
        measurement_line,
        pixel_size_for,
        read_pixel_sizes,
    )
    from fetalscope.pipeline.session import Session

    # the session's rules, with the inputs named as the user typed them, before any image is read
    what = measurement_choice(what, "--what")
    pixel_size = check_pixel_size(pixel_size, "--pixel-size")
    dicom_out = DicomOutputs(sr=sr, fhir=fhir, overlay=overlay, seg=seg, capture=capture)
    session = Session(brain_plane_model=None, brain_findings_model=None, detector=None)
    table = read_pixel_sizes(pixel_sizes) if pixel_sizes is not None else None
    files = list(iter_image_paths(list(paths)))
    records = []
    with progress_bar(len(files), "measure") as advance:
        for path in files:
            image = session.load(path)
            record = session.measure(image, what, pixel_size_for(path, table, pixel_size))
            if draw is not None:
                target = draw / f"{path.stem}_measure.png"
                draw.mkdir(parents=True, exist_ok=True)
                target.write_bytes(png_bytes(draw_findings(image.pixels, measurement=record)))
                record["overlay"] = str(target)
            dicom_out.write(record, path, frame=image.frame,
                            drawing=lambda i=image, r=record: draw_findings(i.pixels, measurement=r))
            records.append(record)
            advance(1)
    if output is not None:
        write_json(output, records)
        say(f"wrote {len(records)} record(s) to {output}")
    if dicom_out.written:
        say(f"wrote {dicom_out.summary()}")
    if as_json:
        payload = records[0] if len(records) == 1 else records
        typer.echo(json.dumps(payload, indent=2, default=str))
    elif output is None:  # people read a line per image; --json (or --output) gives the records
        for record in records:
            typer.echo(measurement_line(record))


app.command("quality")(quality_verb)


# --------------------------------------------------------------------------------------------- serve
@app.command()
@friendly_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind (default loopback only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 7860,
    model: ModelOpt = "sononet-planes",
    token: Annotated[str | None, typer.Option(envvar="FETALSCOPE_TOKEN", help="Require this bearer token.")] = None,
    save_uploads: Annotated[Path | None, typer.Option(help="Opt-in: folder to save uploads to.")] = None,
    runtime: Annotated[str, typer.Option(help="auto | torch | onnx | onnx-int8 (the plane bundle's "
                                              "model.int8.onnx)")] = "auto",
    detector: Annotated[str, typer.Option(help="Detector bundle for brain images.")] = "brain-structures",
    examples: Annotated[Path | None, typer.Option(help="Folder of example images for the gallery.")] = None,
    eval_dir: Annotated[Path | None, typer.Option(help="Evaluation report folder for the performance page.")] = None,
    ablation_dir: Annotated[Path | None, typer.Option(help="Folder with ablation.md for the ablation page.")] = None,
    max_upload_mb: Annotated[float, typer.Option(help="Largest upload accepted, in MB.")] = 20.0,
    timeout: Annotated[float, typer.Option(help="Request timeout in seconds.")] = 120.0,
) -> None:
    """Start the web app (Gradio UI) and HTTP API (FastAPI) on one server."""
    from fetalscope.serve import run_server

    extra = {k: v for k, v in {"examples_dir": examples, "eval_dir": eval_dir, "ablation_dir": ablation_dir}.items()
             if v is not None}
    run_server(host=host, port=port, plane_model=model, token=token, save_uploads=save_uploads, runtime=runtime,
               detector=detector, max_upload_bytes=int(max_upload_mb * 1024 * 1024), request_timeout_s=timeout,
               **extra)


app.command("video")(__import__("fetalscope.cli.video", fromlist=["video"]).video)  # cli/video.py
app.command("dicom-node")(__import__("fetalscope.cli.dicom_node", fromlist=["dicom_node"]).dicom_node)
app.command("robustness")(__import__("fetalscope.cli.robustness", fromlist=["robustness"]).robustness)  # cli/...
