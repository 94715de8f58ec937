"""Build the bundled SonoNet models reproducibly from the shared folder (SonoNet16.npz + real labelled images).

:func:`build_sononet_bundles` writes two bundles into ``out_dir`` (``scripts/build_sononet_bundle.py`` calls it):

- ``sononet-planes-v1``: SonoNet-16 with its 14 outputs mapped onto the FETAL_PLANES_DB planes
  (Maternal cervix not covered), one temperature on SonoNet's logits fitted on the calibration half
  of the real images, evaluated on the other half (patient / subject / duplicate-group disjoint).
  It was the default plane model until the distilled v2 (:mod:`.distilled`, now ``sononet-planes``)
  replaced it; it stays bundled as the "before" of the v2's comparisons.
- ``sononet-brain-planes``: an experimental brain sub-plane linear probe on frozen SonoNet features,
  with its source-shortcut check (see the card; it is marked source-confounded when it is).

Every number in the cards and reports is computed here. Steps: SonoNet outputs on every real image
with and without the sector crop (cached under ``cache``), the sector-crop comparison, temperature fit,
evaluation (via :mod:`fetalscope.evaluate`), the brain sub-plane study, save the bundles with ONNX twins,
ONNX-vs-PyTorch parity (:func:`fetalscope.models.onnx_export.check_parity`) and latency
(:mod:`fetalscope.models.latency`), then the int8 ONNX twin of sononet-planes-v1 and its fidelity
(:mod:`.int8`; ``int8=False`` skips it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import softmax

from fetalscope import config
from fetalscope.data.labels import BRAIN_PLANE_CLASSES, PLANE_CLASSES
from fetalscope.data.real_sets import RealImage, all_real_images
from fetalscope.data.transforms import PreprocessConfig, to_tensor
from fetalscope.evaluate import calibration_errors, evaluate_predictions, write_report
from fetalscope.imaging import load_image
from fetalscope.models import create_model
from fetalscope.models.bundle import save_bundle
from fetalscope.models.latency import EAGER, ORT, bundle_latency
from fetalscope.models.onnx_export import check_parity
from fetalscope.models.sononet import (
    PLANES_COVERED,
    PLANES_NOT_COVERED,
    SONONET_CLASSES,
    SONONET_PREPROCESS,
    SONONET_TO_PLANES,
    SonoNetClassifier,
)
from fetalscope.models.weights.common import file_sha256
from fetalscope.models.weights.sononet_npz import sononet16_npz_path
from fetalscope.train.recipes.sononet.common import (
    CALIBRATION_SOURCES,
    CITATIONS,
    DATA_LICENCES,
    SPLIT_SALT,
    count_table,
    frac,
    image_list_sha256,
    readable,
    split_of,
)
from fetalscope.train.recipes.sononet.markdown import extra_markdown, pct, subplane_markdown
from fetalscope.train.recipes.sononet.outputs import mapped_probs, sononet_outputs, to_plane_space
from fetalscope.train.recipes.sononet.studies import (
    SUBPLANE_SPLIT_NOTE,
    brain_subplane_study,
    hc_bins_table,
    native_table,
    sector_crop_study,
)

V1_NAME = "sononet-planes-v1"  # the untrained SonoNet-16 mapping's bundle (the default is the distilled v2)
LATENCY_BATCH = 8


def onnx_parity(bundle_dir: Path, inputs: torch.Tensor) -> dict[str, Any]:
    """The card's ``onnx.parity`` record (:func:`check_parity`, one ONNX Runtime thread); raises when the ONNX
    twin differs from PyTorch by more than the tolerance."""
    parity = check_parity(bundle_dir, inputs, intra_op_threads=1)
    if not parity.passed:
        raise RuntimeError(f"ONNX twin of {bundle_dir} differs from PyTorch: {parity.describe()}")
    return parity.to_dict()


def latency(bundle_dir: Path, image_paths: list[Path], runs: int) -> dict[str, Any]:
    """The card's ``onnx.latency`` record: batch-1 p50 and batch-8 throughput of PyTorch eager and fp32 ONNX
    Runtime on one thread (int8 is timed by :mod:`.int8`, after the fp32 model is final)."""
    result = bundle_latency(bundle_dir, image_paths, threads=1, runs=runs, batch=LATENCY_BATCH, batch_runs=3)
    b1 = {k: v["batch1_p50_ms"] for k, v in result["results"].items()}
    return {
        "threads": 1,
        "runs": runs,
        "batch1_p50_ms": b1,
        "onnx_over_torch_latency_ratio": b1[ORT] / b1[EAGER],
        "speedup_batch1_p50": result["speedup_batch1_p50"],
        f"images_per_s_batch{LATENCY_BATCH}": {
            k: v[f"batch{LATENCY_BATCH}_images_per_s"] for k, v in result["results"].items()
        },
        "machine": result["machine"],
        "measured_by": "fetalscope.models.latency (as benchmarks/bench_inference.py)",
    }


def build_planes_bundle(
    out_dir: Path,
    images: list[RealImage],
    outs: dict[bool, dict[str, np.ndarray]],
    weights_sha: str,
    bench_runs: int = 30,
    model: SonoNetClassifier | None = None,
    preprocess: PreprocessConfig = SONONET_PREPROCESS,
    card_update: Callable[[dict[str, Any]], None] | None = None,
    bundle_name: str = V1_NAME,
    min_temperature: float | None = None,
) -> dict[str, Any]:
    """The ``sononet-planes`` bundle in ``out_dir``: temperature fitted on the calibration split, evaluated on
    the test split, with its studies, ONNX twin, parity and latency. ``outs``: :func:`sononet_outputs` without
    (``False``) and with (``True``) the sector crop. ``model`` (default: SonoNet-16 as published) with its
    ``preprocess`` (``outs[preprocess.crop_sector]`` are its outputs) and ``card_update`` (edits the card in
    place before it is saved) let a fine-tuned SonoNet (:mod:`.distilled`) go through the same build;
    ``bundle_name`` is the bundle's folder and card name; ``min_temperature`` bounds the fitted temperature
    from below (the fit's NLL is convex in the log temperature, so the clamped optimum is the bounded one)."""
    out = outs[preprocess.crop_sector]
    split = np.array([split_of(im.group) if im.source in CALIBRATION_SOURCES else "test" for im in images])
    src = np.array([im.source for im in images])
    y5 = np.array([PLANES_COVERED.index(im.plane) for im in images])
    cal, test = split == "calibration", split == "test"
    assert not (
        {im.group for im, c in zip(images, cal, strict=True) if c}
        & {im.group for im, t in zip(images, test, strict=True) if t}
    ), "a group sits in both splits"

    if model is None:
        model = create_model("sononet16_planes", len(PLANES_COVERED), pretrained=True)
    model.eval()
    fit = model.head.mapping.fit(torch.from_numpy(out["native"][cal]), torch.from_numpy(y5[cal]))
    if min_temperature is not None and model.head.mapping.temperature < min_temperature:
        with torch.no_grad():
            model.head.mapping.log_temperature.fill_(float(np.log(min_temperature)))
            fit["nll_after"] = float(torch.nn.functional.cross_entropy(
                model.head.mapping(torch.from_numpy(out["native"][cal])), torch.from_numpy(y5[cal])))
    temperature = model.head.mapping.temperature
    print(
        f"temperature {temperature:.4f} (calibration NLL {fit['nll_before']:.4f} -> {fit['nll_after']:.4f})"
    )

    def scores(p: np.ndarray, yy: np.ndarray) -> dict[str, Any]:
        p6 = to_plane_space(p)
        y6 = np.array([PLANE_CLASSES.index(PLANES_COVERED[k]) for k in yy])
        e = calibration_errors(p6, y6)
        nll = float(-np.log(np.clip(p[np.arange(len(yy)), yy], 1e-12, None)).mean())
        return {"ece": e["ece"], "mce": e["mce"], "nll": nll, "correct": int((p.argmax(1) == yy).sum())}

    cal_rows = []
    for name, m in [
        ("all test images", test),
        *[(f"{s} (test)", test & (src == s)) for s in dict.fromkeys(src[test])],
    ]:
        cal_rows.append(
            {
                "subset": name,
                "n": int(m.sum()),
                "before": scores(mapped_probs(out["native"][m], 1.0), y5[m]),
                "after": scores(mapped_probs(out["native"][m], temperature), y5[m]),
            }
        )

    # the shipped model's own probabilities (PyTorch, from its forward) on the test images
    with torch.no_grad():
        logits = model.head.mapping(torch.from_numpy(out["native"][test])).numpy().astype(np.float64)
    p_test = softmax(logits, axis=1)
    assert np.allclose(p_test, mapped_probs(out["native"][test], temperature), atol=1e-5)
    test_imgs = [im for im, t in zip(images, test, strict=True) if t]
    y_test6 = np.array([PLANE_CLASSES.index(im.plane) for im in test_imgs])
    logits6 = np.full((len(logits), len(PLANE_CLASSES)), -np.inf)
    for j, c in enumerate(PLANES_COVERED):
        logits6[:, PLANE_CLASSES.index(c)] = logits[:, j]

    folder = out_dir / bundle_name
    folder.mkdir(parents=True, exist_ok=True)
    report = evaluate_predictions(
        y_test6,
        to_plane_space(p_test),
        PLANE_CLASSES,
        groups=[im.group for im in test_imgs],
        meta={
            "source": [im.source for im in test_imgs],
            "machine": [im.meta_dict().get("machine", "(not recorded)") for im in test_imgs],
        },
        breakdown_columns=("source", "machine"),
        test_logits=logits6,
        classes_not_covered=list(PLANES_NOT_COVERED),
        title=f"{bundle_name}: SonoNet-16 mapped to FETAL_PLANES_DB planes, real held-apart test images",
    )

    pred_test = p_test.argmax(1)
    ok = pred_test == y5[test]
    per_source = []
    for c in PLANES_COVERED:
        for s in dict.fromkeys(src[test]):
            m = (y5[test] == PLANES_COVERED.index(c)) & (src[test] == s)
            if m.any():
                per_source.append({"class": c, "source": s, **frac(int(ok[m].sum()), int(m.sum()))})
    hc_ok = np.zeros(len(images), bool)
    hc_ok[test] = ok
    no_real = [c for c in PLANE_CLASSES if c not in {im.plane for im in images}]
    extra = {
        "calibration": {
            "temperature": temperature,
            "n_calibration": int(cal.sum()),
            "calibration_counts": {s: int((cal & (src == s)).sum()) for s in dict.fromkeys(src[cal])},
            "nll_calibration_before": fit["nll_before"],
            "nll_calibration_after": fit["nll_after"],
            "bias_note": "only Fetal brain and Fetal thorax have real images; fitting class biases "
            "on them would push the absent classes down for no reason",
            "test": cal_rows,
        },
        "per_source": per_source,
        "classes_without_real_images": no_real,
        "hc18_by_hc": hc_bins_table(images, hc_ok, test & (src == "HC18")),
        "sector_crop": sector_crop_study(images, outs[False]["native"], outs[True]["native"]),
        "native_top1": native_table(images, out["native"], test),
    }

    split_counts = {
        "calibration": count_table([(im.source, im.plane) for im, c in zip(images, cal, strict=True) if c]),
        "test": count_table([(im.source, im.plane) for im in test_imgs]),
    }
    card = {
        "name": bundle_name,
        "version": "1.0.0",
        "task": "planes",
        "classes": list(PLANES_COVERED),
        "classes_not_covered": list(PLANES_NOT_COVERED),
        "label_space": list(PLANE_CLASSES),
        "preprocess": preprocess.to_dict(),
        "temperature": 1.0,
        "calibration": {
            "method": "one temperature on SonoNet's 14 logits inside the model "
            "(head.mapping.log_temperature), "
            "applied before the plane mapping; the card's softmax temperature therefore stays 1.0",
            "temperature_on_sononet_logits": temperature,
            "fitted_on": f"{int(cal.sum())} real calibration images (half of the patients/subjects/groups)",
            "per_class_bias": "not fitted (zero): " + extra["calibration"]["bias_note"],
            "ece_test_before": cal_rows[0]["before"]["ece"],
            "ece_test_after": cal_rows[0]["after"]["ece"],
        },
        "native_output": {
            "classes": list(SONONET_CLASSES),
            "mapping": {k: list(v) for k, v in SONONET_TO_PLANES.items()},
            "how": "model.native_logits(x) or model.logits_and_native(x) in PyTorch (SonoNet's own 14 "
            "planes, "
            "no temperature); the ONNX twin outputs the mapped plane logits only",
            "mapped_logit": "log-sum-exp of the member logits / T, so each plane probability is the sum "
            "of its "
            "members' SonoNet probabilities",
        },
        "base_weights": {
            "name": "SonoNet-16 (Baumgartner et al. 2017, arXiv:1612.05601)",
            "source": "github.com/baumgach/SonoNet-weights commit 6c4df39, SonoNet16.npz "
            f"(sha256 {weights_sha[:16]}...), read from shared/weights",
            "licence": "Apache-2.0",
            "trained_on": "UK fetal screening scans (13 standard planes + background), 18-22 weeks",
        },
        "intended_use": "Research and education only: sorting fetal ultrasound images by standard plane, "
        "teaching, "
        "and a baseline to compare fine-tuned models with. Not a medical device: not for "
        "diagnosis, screening decisions or any clinical use.",
        "data": {
            "source": "No training: SonoNet's weights are used as published. Real images were used only "
            "to fit "
            "one temperature (calibration split) and to evaluate (test split).",
            "split": f"by patient/subject/duplicate group, fixed hash ({SPLIT_SALT}); abnormal web brains "
            "are test-only",
            "licence": "; ".join(f"{k}: {v}" for k, v in DATA_LICENCES.items()),
            "image_list_sha256": image_list_sha256(images),
            "counts": split_counts,
        },
        "metrics": {
            "test_accuracy": report["metrics"]["accuracy"],
            "test_accuracy_ci95": {
                "value": report["confidence_intervals"]["accuracy"]["estimate"],
                "ci_low": report["confidence_intervals"]["accuracy"]["lower"],
                "ci_high": report["confidence_intervals"]["accuracy"]["upper"],
                "ci_level": report["confidence_intervals"]["accuracy"]["confidence"],
                "unit": "bootstrap over patients/subjects/groups",
            },
            "per_class": {
                r["class"]: (r["correct"] if r["too_few"] else r["recall"])
                for r in report["metrics"]["per_class"]
                if r["status"] == "ok"
            },
            "per_source": {row["subset"]: f"{row['after']['correct']}/{row['n']}" for row in cal_rows[1:]},
            "ece_before": cal_rows[0]["before"]["ece"],
            "ece_after": cal_rows[0]["after"]["ece"],
            "no_real_test_images": no_real,
        },
        "limitations": [
            "Maternal cervix is not covered: SonoNet has no such plane; a cervix image gets one of the five "
            "covered classes (often Other).",
            "Fetal abdomen, Fetal femur and Other have no real labelled test images here, so no accuracy is "
            "claimed for them; only Fetal brain and Fetal thorax were measured.",
            "Gestational age outside SonoNet's 18-22 week training range: on HC18 heads the brain plane is "
            "found far less often for small (HC < 100 mm, first trimester) and large (HC > 300 mm) "
            "heads; see "
            "report.md.",
            "Abnormal brains from unknown web sources (cysts, Chiari malformations, ventriculomegaly) "
            "are often "
            "called Background / Other; the model was never meant for pathology.",
            "The plane mapping is fixed: 3VV/4CH/LVOT/RVOT -> Fetal thorax, Brain (Cb.)/(Tv.) -> Fetal "
            "brain, "
            "Kidneys/Lips/Profile/Spine/Background -> Other. FETAL_PLANES_DB's Other differs from SonoNet's "
            "Background; images of those planes may be confused.",
            "Screen layouts differ by scanner: the sector crop keeps the largest bright textured region; "
            "images whose scan region is not the largest such region may be cropped wrongly.",
            f"Calibration was fitted on brain and thorax images only (test {int(test.sum())} "
            "images); confidences for the other classes are not checked.",
        ],
        "citations": CITATIONS,
        "files": {"report": "report.json / report.md (test split, via fetalscope.evaluate)"},
    }
    if card_update is not None:
        card_update(card)
    save_bundle(model, folder, card, onnx=True)
    readable(folder)
    # ONNX parity on real test images, latency via fetalscope.models.latency
    cfg = preprocess
    sample = [im for im in test_imgs if im.source != "web-abnormal-rf"][:: max(1, len(test_imgs) // 48)][:48]
    inputs = torch.stack([to_tensor(load_image(im.path), cfg) for im in sample])
    extra["onnx"] = {
        "parity": onnx_parity(folder, inputs),
        "latency": latency(folder, [im.path for im in sample[:8]], bench_runs),
    }
    card["onnx"] = extra["onnx"]
    card["metrics"]["onnx_over_torch_latency_ratio"] = extra["onnx"]["latency"][
        "onnx_over_torch_latency_ratio"
    ]
    save_bundle(model, folder, card, onnx=True)
    readable(folder)
    report["sononet"] = extra
    # evaluate's report files, then the SonoNet-specific sections appended to report.md
    write_report(report, folder, y=y_test6, probs=to_plane_space(p_test))
    with open(folder / "report.md", "a", encoding="utf-8") as fh:
        fh.write(extra_markdown(extra))
    return {"report": report, "extra": extra, "card": card}


def build_subplane_bundle(
    out_dir: Path, images: list[RealImage], out: dict[str, np.ndarray], planes_folder: Path
) -> dict[str, Any]:
    """The experimental ``sononet-brain-planes`` probe bundle in ``out_dir`` (sector-cropped outputs ``out``),
    its report, and the sub-plane study appended to ``planes_folder``'s report.md."""
    result = brain_subplane_study(images, out)
    study = result["study"]
    model = create_model("sononet16", len(BRAIN_PLANE_CLASSES), pretrained=True, head="linear").eval()
    with torch.no_grad():
        model.head.fc.weight.copy_(torch.from_numpy(result["weight"]).float())
        model.head.fc.bias.copy_(torch.from_numpy(result["bias"]).float())
    folder = out_dir / "sononet-brain-planes"
    folder.mkdir(parents=True, exist_ok=True)
    confounded = result["confounded"]
    cv = study["cross_validation"]
    sc = study["source_shortcut_check"]
    y, groups, src = result["y"], result["groups"], result["sources"]
    oof_p = softmax(result["oof_logits"], axis=1)
    report = evaluate_predictions(
        y,
        oof_p,
        BRAIN_PLANE_CLASSES,
        groups=groups,
        meta={"source": list(src)},
        breakdown_columns=("source",),
        test_logits=result["oof_logits"],
        title="sononet-brain-planes: out-of-fold predictions of the brain sub-plane probe (5-fold, by "
              "patient)",
    )
    card = {
        "name": "sononet-brain-planes",
        "version": "0.1.0",
        "task": "brain-planes",
        "status": "experimental, source-confounded" if confounded else "experimental",
        "source_confounded": confounded,
        "applies_to": "images already classified as Fetal brain (e.g. by sononet-planes)",
        "classes": list(BRAIN_PLANE_CLASSES),
        "classes_not_covered": [],
        "preprocess": SONONET_PREPROCESS.to_dict(),
        "temperature": 1.0,
        "base_weights": {
            "name": "SonoNet-16 (Baumgartner et al. 2017, arXiv:1612.05601), frozen",
            "source": "github.com/baumgach/SonoNet-weights commit 6c4df39 (SonoNet16.npz)",
            "licence": "Apache-2.0",
        },
        "intended_use": "Research and education only (an experiment in what frozen SonoNet features know "
        "about "
        "brain sub-planes). Not a medical device. Do not rely on its sub-plane: see the "
        "source-shortcut check.",
        "data": {
            "source": f"{len(y)} real brain images with a sub-plane label: HC18 (all Trans-thalamic, "
            "Nijmegen), "
            "FETAL_PLANES_DB Trans-ventricular (Alzubaidi), FETAL_PLANES_DB brain images via Roboflow "
            "(sub-plane from the official CSV; Barcelona)",
            "split": SUBPLANE_SPLIT_NOTE,
            "licence": "; ".join(f"{k}: {v}" for k, v in DATA_LICENCES.items() if k in set(src)),
            "counts": {f"{r['source']} / {r['sub_plane']}": r["n"] for r in study["counts"]},
        },
        "metrics": {
            "cv_balanced_accuracy": cv["balanced_accuracy"],
            "cv_balanced_accuracy_fpdb_images": cv["balanced_accuracy_fpdb_only_images"],
            "fpdb_only_cv_balanced_accuracy": study["fpdb_only_cross_validation"]["balanced_accuracy"],
            "cv_recall": {f"{r['source']} / {r['true']}": f"{r['correct']}/{r['n']}" for r in cv["rows"]},
            "source_shortcut_check": sc,
        },
        "limitations": [
            f"Source shortcut: Trans-thalamic recall {pct(sc['trans_thalamic_recall_hc18'])} on HC18 "
            "(one Dutch "
            f"centre) but {pct(sc['trans_thalamic_recall_fpdb'])} on FETAL_PLANES_DB (Barcelona); "
            f"Trans-ventricular {pct(sc['trans_ventricular_recall_fpdb_tv_png'])} on full-size PNGs vs "
            f"{pct(sc['trans_ventricular_recall_fpdb_rf_jpg'])} on 256 px JPGs. Part of what it learned is "
            "the image source, not the anatomy.",
            "Trans-cerebellum examples are few (all from one redistributed FETAL_PLANES_DB subset of 256 "
            "px JPGs).",
            "Trans-thalamic vs Trans-ventricular is barely separable with frozen SonoNet features: "
            "SonoNet's own "
            "'Brain (Tv.)' output fires for both.",
            "SonoNet's own Brain (Cb.) output (sononet-planes, native_logits) is an alternative "
            "trans-cerebellar "
            "indicator with no fitting; see report.md for how often it agrees.",
            "Only meaningful on images that are Fetal brain.",
        ],
        "citations": CITATIONS[:4],
        "subplane_study": study,
    }
    save_bundle(model, folder, card, onnx=True)
    readable(folder)
    brain_imgs = [im for im in images if im.brain_plane in BRAIN_PLANE_CLASSES][::20][:32]
    inputs = torch.stack([to_tensor(load_image(im.path), SONONET_PREPROCESS) for im in brain_imgs])
    card["onnx"] = {"parity": onnx_parity(folder, inputs)}
    save_bundle(model, folder, card, onnx=True)
    readable(folder)
    report["subplane_study"] = study
    write_report(report, folder, y=y, probs=oof_p)
    with open(folder / "report.md", "a", encoding="utf-8") as fh:
        fh.write(subplane_markdown(study))
    # the same study, summarised in the planes bundle's report
    with open(planes_folder / "report.md", "a", encoding="utf-8") as fh:
        fh.write(
            "\n"
            + subplane_markdown(study).replace(
                "## Brain sub-plane", "### Brain sub-plane (bundle sononet-brain-planes)", 1
            )
        )
    return {"report": report, "card": card}


def build_sononet_bundles(out_dir: Path, cache: Path | None = None, bench_runs: int = 30, int8: bool = True,
                          threads: int = 1) -> dict[str, Any]:
    """Both SonoNet bundles into ``out_dir`` from the shared folder (:func:`fetalscope.config.shared_data_dir`,
    SonoNet16.npz from the shared weights), SonoNet outputs cached in ``cache`` (default
    ``<cache>/sononet_build``), ``bench_runs`` timed batch-1 calls per runtime. With ``int8`` also
    sononet-planes' ``model.int8.onnx`` and its card field (else stale int8 files are removed). Returns a
    summary of the headline numbers."""
    from fetalscope.train.recipes.sononet.int8 import quantize_sononet_planes

    cache = cache or (config.cache_dir() / "sononet_build")
    torch.manual_seed(0)
    npz = sononet16_npz_path()
    weights_sha = file_sha256(npz)
    images = all_real_images(config.shared_data_dir())
    print(f"{len(images)} real images: {count_table([(im.source, im.plane) for im in images])}")
    model = create_model("sononet16_planes", len(PLANES_COVERED), pretrained=True).eval()
    outs = {
        crop: sononet_outputs(model, images, SONONET_PREPROCESS.replace(crop_sector=crop), cache, weights_sha)
        for crop in (False, True)
    }
    planes = build_planes_bundle(out_dir, images, outs, weights_sha, bench_runs)
    sub = build_subplane_bundle(out_dir, images, outs[True], out_dir / V1_NAME)
    if int8:  # the card was rewritten above: quantise from the new model.onnx, re-measure
        quantize_sononet_planes(out_dir / V1_NAME, bench_runs=bench_runs, threads=threads)
    else:
        for stale in ("model.int8.onnx", "int8_calibration.json"):  # they would describe the old model
            (out_dir / V1_NAME / stale).unlink(missing_ok=True)
    return {
        V1_NAME: {
            "ece": (
                planes["extra"]["calibration"]["test"][0]["before"]["ece"],
                planes["extra"]["calibration"]["test"][0]["after"]["ece"],
            ),
            "temperature": planes["extra"]["calibration"]["temperature"],
            "accuracy": planes["report"]["metrics"]["accuracy"],
            "onnx": planes["extra"]["onnx"],
        },
        "sononet-brain-planes": {
            "status": sub["card"]["status"],
            "cv_balanced_accuracy": sub["card"]["metrics"]["cv_balanced_accuracy"],
        },
    }
