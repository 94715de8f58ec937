#!/usr/bin/env python3
"""Build the bundled SonoNet models reproducibly from shared/ (SonoNet16.npz + real labelled images).

    .venv/bin/python scripts/build_sononet_bundle.py --shared ../shared

Writes two bundles into ``src/fetalscope/models/bundled/`` (or ``--out``):

- ``sononet-planes``: SonoNet-16 with its 14 outputs mapped onto the FETAL_PLANES_DB planes
  (Maternal cervix not covered), one temperature on SonoNet's logits fitted on the calibration half
  of the real images, evaluated on the other half (patient / subject / duplicate-group disjoint).
- ``sononet-brain-planes``: an experimental brain sub-plane linear probe on frozen SonoNet features,
  with its source-shortcut check (see the card; it is marked source-confounded when it is).

Every number in the cards and reports is computed here. Steps: SonoNet outputs on every real image
with and without the sector crop (cached under ``<cache>/sononet_build``), the sector-crop
comparison, temperature fit, evaluation (via :mod:`fetalscope.evaluate`), the brain sub-plane study,
save the bundles with ONNX twins, ONNX-vs-PyTorch parity and latency (benchmarks/bench_inference.py),
then the int8 ONNX twin of sononet-planes and its fidelity (scripts/quantize_bundle.py; ``--no-int8`` skips).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import softmax

sys.path.insert(0, str(Path(__file__).resolve().parent))

from script_setup import add_shared_option, apply_shared_option, load_bench_module  # noqa: E402
from sononet_real_sets import RealImage, all_real_images  # noqa: E402

from fetalscope import config  # noqa: E402
from fetalscope.data import transforms as transforms_module  # noqa: E402
from fetalscope.data.labels import BRAIN_PLANE_CLASSES, PLANE_CLASSES  # noqa: E402
from fetalscope.data.transforms import PreprocessConfig, to_tensor  # noqa: E402
from fetalscope.evaluate import calibration_errors, evaluate_predictions  # noqa: E402
from fetalscope.imaging import load_image  # noqa: E402
from fetalscope.imaging import loader as loader_module  # noqa: E402
from fetalscope.imaging import sector as sector_module  # noqa: E402
from fetalscope.models import create_model  # noqa: E402
from fetalscope.models.bundle import load_bundle, save_bundle  # noqa: E402
from fetalscope.models.runtime import OnnxPredictor, TorchPredictor  # noqa: E402
from fetalscope.models.sononet import (  # noqa: E402
    PLANES_COVERED,
    PLANES_NOT_COVERED,
    SONONET_CLASSES,
    SONONET_PREPROCESS,
    SONONET_TO_PLANES,
    SonoNetClassifier,
)
from fetalscope.models.weights.common import file_sha256  # noqa: E402
from fetalscope.models.weights.sononet_npz import sononet16_npz_path  # noqa: E402

SPLIT_SALT = "fetalscope/sononet-planes/v1"
CALIBRATION_SOURCES = ("HC18", "FPDB-TV", "FPDB-brain-rf", "FOCUS")  # web-abnormal: evaluation only
SUBPLANE_C = 0.01  # inverse L2 strength of the brain sub-plane logistic regression (features standardised)
SUBPLANE_FOLDS = 5
PARITY_TOLERANCE = 1e-4
BATCH = 32
SUBPLANE_SPLIT_NOTE = (
    f"{SUBPLANE_FOLDS}-fold cross-validation grouped by patient/subject for every reported "
    "number; the shipped probe is refitted on all images"
)

CITATIONS = [
    "Baumgartner CF, Kamnitsas K, Matthew J, et al. SonoNet: real-time detection and localisation of fetal "
    "standard scan planes in freehand ultrasound. IEEE Trans Med Imaging 36(11):2204-2215 (2017); "
    "arXiv:1612.05601. Weights: github.com/baumgach/SonoNet-weights (Apache-2.0).",
    "van den Heuvel TLA, de Bruijn D, de Korte CL, van Ginneken B. Automated measurement of fetal head "
    "circumference using 2D ultrasound images. PLoS ONE 13(8):e0200412 (2018). HC18 data, CC BY 4.0.",
    "Alzubaidi M, et al. Large-scale annotation dataset for fetal head biometry in ultrasound images. "
    "Data in Brief 51:109708 (2023). Trans-ventricular images, CC BY 4.0.",
    "Burgos-Artizzu XP, Coronado-Gutierrez D, Valenzuela-Alcaraz B, et al. Evaluation of deep convolutional "
    "neural networks for automatic classification of common maternal fetal ultrasound planes. Sci Rep "
    "10:10200 (2020). FETAL_PLANES_DB (and the FOCUS thorax images drawn from it), CC BY 4.0.",
]
DATA_LICENCES = {
    "HC18": "CC BY 4.0 (van den Heuvel et al. 2018); Radboud UMC, Nijmegen, the Netherlands",
    "FPDB-TV": "CC BY 4.0 (Alzubaidi et al. 2023; images from FETAL_PLANES_DB, Burgos-Artizzu et al. 2020)",
    "FPDB-brain-rf": "CC BY 4.0 (FETAL_PLANES_DB brain images, Burgos-Artizzu et al. 2020, as 256x256 JPG "
    "in Roboflow project fetal-abnormality-object-detection v1; sub-plane from the official "
    "FETAL_PLANES_DB CSV)",
    "FOCUS": "CC BY 4.0 (FETAL_PLANES_DB Fetal thorax images, Burgos-Artizzu et al. 2020; FOCUS annotations, "
    "MIT, lukaznj/fetal-ctr-detection)",
    "web-abnormal-rf": "CC BY 4.0 (Roboflow project fetal-abnormality-object-detection v1; abnormal fetal "
    "brains of unknown web origin)",
}


# --------------------------------------------------------------------------------------------- helpers
def split_of(group: str) -> str:
    """``calibration`` or ``test``: a fixed hash of the group, so a patient never sits in both."""
    digest = hashlib.sha256(f"{SPLIT_SALT}:{group}".encode()).digest()
    return "calibration" if digest[0] % 2 == 0 else "test"


def image_list_sha256(images: list[RealImage]) -> str:
    h = hashlib.sha256()
    for im in images:
        h.update(
            f"{im.source}|{im.path.name}|{im.path.stat().st_size}|{im.plane}|{im.brain_plane}\n".encode()
        )
    return h.hexdigest()


@torch.inference_mode()
def sononet_outputs(
    model: SonoNetClassifier, images: list[RealImage], cfg: PreprocessConfig, cache: Path, weights_sha: str
) -> dict[str, np.ndarray]:
    """SonoNet's 14 logits and the spatial mean of the backbone output (128) for every image (cached).

    The cache key covers the image list, the preprocessing config, the weights and the source code
    of the loader, the sector crop and the transforms, so a change in any of them recomputes."""
    code = hashlib.sha256()
    for module in (loader_module, sector_module, transforms_module):
        code.update(Path(module.__file__).read_bytes())
    key = hashlib.sha256(
        json.dumps(
            {"images": image_list_sha256(images), "cfg": cfg.to_dict(), "weights": weights_sha,
             "code": code.hexdigest(), "v": 1},
            sort_keys=True,
        ).encode()
    ).hexdigest()[:20]
    path = cache / f"outputs-{key}.npz"
    if path.is_file():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    model.eval()
    native, feats = [], []
    t0 = time.time()
    for i in range(0, len(images), BATCH):
        x = torch.stack([to_tensor(load_image(im.path), cfg) for im in images[i : i + BATCH]])
        f = model.backbone(x)
        native.append(model.head.native(f).numpy())
        feats.append(f.mean(dim=(2, 3)).numpy())
        print(
            f"  crop_sector={cfg.crop_sector}: {min(i + BATCH, len(images))}/{len(images)} images "
            f"({time.time() - t0:.0f}s)",
            flush=True,
        )
    out = {"native": np.concatenate(native), "features": np.concatenate(feats)}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def mapped_probs(native: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Probabilities over :data:`PLANES_COVERED`: sums of SonoNet's softmax(z / T) over each group."""
    p = softmax(native / temperature, axis=1)
    return np.stack(
        [p[:, [SONONET_CLASSES.index(m) for m in SONONET_TO_PLANES[c]]].sum(1) for c in PLANES_COVERED],
        axis=1,
    )


def to_plane_space(p_covered: np.ndarray) -> np.ndarray:
    """Probabilities over all of :data:`PLANE_CLASSES` (0 for the classes not covered)."""
    out = np.zeros((len(p_covered), len(PLANE_CLASSES)))
    for j, c in enumerate(PLANES_COVERED):
        out[:, PLANE_CLASSES.index(c)] = p_covered[:, j]
    return out


def count_table(keys: list[tuple[str, ...]]) -> dict[str, int]:
    return {" / ".join(k): n for k, n in sorted(Counter(keys).items())}


def frac(correct: int, n: int) -> dict[str, Any]:
    return {"correct": int(correct), "n": int(n), "accuracy": (correct / n) if n else None}


# ------------------------------------------------------------------------------------------ studies
def sector_crop_study(images: list[RealImage], plain: np.ndarray, cropped: np.ndarray) -> dict[str, Any]:
    """Mapped-plane accuracy per source with a whole-image resize vs the sector crop (T = 1, no fitting)."""
    y = np.array([PLANES_COVERED.index(im.plane) for im in images])
    pred_plain = mapped_probs(plain).argmax(1)
    pred_crop = mapped_probs(cropped).argmax(1)
    rows = []
    sources = [*dict.fromkeys(im.source for im in images)]
    for src in [*sources, "all"]:
        m = np.array([src in ("all", im.source) for im in images])
        a, b = pred_plain[m] == y[m], pred_crop[m] == y[m]
        rows.append(
            {
                "source": src,
                "n": int(m.sum()),
                "correct_resize": int(a.sum()),
                "correct_sector_crop": int(b.sum()),
                "fixed_by_crop": int((~a & b).sum()),
                "broken_by_crop": int((a & ~b).sum()),
            }
        )
    return {
        "what": "SonoNet mapped-plane accuracy (temperature 1, nothing fitted) on every real image, "
        "whole-image resize vs crop to the ultrasound sector first (fetalscope.imaging.sector)",
        "rows": rows,
    }


def native_table(images: list[RealImage], native: np.ndarray, mask: np.ndarray) -> list[dict[str, Any]]:
    """SonoNet's own top-1 plane per (source, label) of the selected images."""
    top = native.argmax(1)
    table: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for im, t, keep in zip(images, top, mask, strict=True):
        if keep:
            table[(im.source, im.brain_plane or im.plane)][SONONET_CLASSES[t]] += 1
    return [
        {"source": s, "label": lab, "n": sum(c.values()), "sononet_top1": dict(c.most_common())}
        for (s, lab), c in sorted(table.items())
    ]


def hc_bins_table(images: list[RealImage], pred_ok: np.ndarray, mask: np.ndarray) -> list[dict[str, Any]]:
    """Fetal brain accuracy of HC18 images by head circumference (a gestational-age proxy)."""
    hc = np.array([float(im.meta_dict().get("head_circumference_mm", "nan")) for im in images])
    rows = []
    for lo, hi in ((0, 100), (100, 150), (150, 200), (200, 250), (250, 300), (300, 400)):
        m = mask & (hc >= lo) & (hc < hi)
        rows.append({"head_circumference_mm": f"{lo}-{hi}", **frac(int(pred_ok[m].sum()), int(m.sum()))})
    return rows


def _subplane_weights(y: np.ndarray, src: np.ndarray) -> np.ndarray:
    """Equal total weight per class; within a class, equal weight per source (HC18 does not swamp FPDB)."""
    w = np.ones(len(y))
    for k in np.unique(y):
        sources = np.unique(src[y == k])
        for s in sources:
            m = (y == k) & (src == s)
            w[m] = 1.0 / (m.sum() * len(sources))
    return w / w.mean()


def _fit_probe(x: np.ndarray, y: np.ndarray, src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression on standardised features, folded back into ``(W, b)`` on raw features."""
    from sklearn.linear_model import LogisticRegression

    mu, sd = x.mean(0), x.std(0) + 1e-6
    clf = LogisticRegression(C=SUBPLANE_C, max_iter=10000)
    clf.fit((x - mu) / sd, y, sample_weight=_subplane_weights(y, src))
    full_w = np.zeros((len(BRAIN_PLANE_CLASSES), x.shape[1]))
    full_b = np.full(len(BRAIN_PLANE_CLASSES), -1e4)
    for row, k in enumerate(clf.classes_):
        full_w[k] = clf.coef_[row] / sd
        full_b[k] = clf.intercept_[row] - (clf.coef_[row] * mu / sd).sum()
    return full_w, full_b


def _recall_rows(y: np.ndarray, pred: np.ndarray, src: np.ndarray, mask: np.ndarray) -> list[dict[str, Any]]:
    rows = []
    for s in sorted(set(src[mask])):
        for k, cls in enumerate(BRAIN_PLANE_CLASSES):
            m = mask & (src == s) & (y == k)
            if m.any():
                called = Counter(BRAIN_PLANE_CLASSES[int(p)] for p in pred[m])
                rows.append(
                    {
                        "source": s,
                        "true": cls,
                        **frac(int((pred[m] == k).sum()), int(m.sum())),
                        "predicted": dict(called.most_common()),
                    }
                )
    return rows


def _balanced(y: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> float:
    return float(np.mean([(pred[mask & (y == k)] == k).mean() for k in np.unique(y[mask])]))


def brain_subplane_study(images: list[RealImage], out: dict[str, np.ndarray]) -> dict[str, Any]:
    """Can frozen SonoNet features tell Trans-thalamic / Trans-cerebellum / Trans-ventricular apart,
    and is what they learn anatomy or image source? Returns the study and the shipped probe."""
    from sklearn.model_selection import StratifiedGroupKFold

    sel = np.array([im.brain_plane in BRAIN_PLANE_CLASSES for im in images])
    imgs = [im for im, k in zip(images, sel, strict=True) if k]
    x, native = out["features"][sel], out["native"][sel]
    y = np.array([BRAIN_PLANE_CLASSES.index(im.brain_plane) for im in imgs])
    src = np.array([im.source for im in imgs])
    groups = np.array([im.group for im in imgs])
    counts = [
        {"source": s, "sub_plane": c, "n": int(((src == s) & (y == k)).sum())}
        for s in sorted(set(src))
        for k, c in enumerate(BRAIN_PLANE_CLASSES)
        if ((src == s) & (y == k)).any()
    ]

    # 1. SonoNet alone (nothing fitted): Brain (Cb.) -> Trans-cerebellum, Brain (Tv.) -> TT or TV
    cb, tv = SONONET_CLASSES.index("Brain (Cb.)"), SONONET_CLASSES.index("Brain (Tv.)")
    says_cb = native[:, cb] > native[:, tv]
    sononet_rows = []
    for s in sorted(set(src)):
        for k, cls in enumerate(BRAIN_PLANE_CLASSES):
            m = (src == s) & (y == k)
            if m.any():
                sononet_rows.append(
                    {
                        "source": s,
                        "true": cls,
                        "n": int(m.sum()),
                        "sononet_says_cb": int(says_cb[m].sum()),
                        "sononet_says_tv": int((~says_cb[m]).sum()),
                    }
                )

    # 2. the naive design: each class from whichever source has it (TT = HC18 only, TV = FPDB-TV only,
    #    TC = FPDB-brain-rf), tested on the same classes from the other source
    naive_train = (
        ((src == "HC18") & (y == 0)) | ((src == "FPDB-TV") & (y == 2)) | ((src == "FPDB-brain-rf") & (y == 1))
    )
    w, b = _fit_probe(x[naive_train], y[naive_train], src[naive_train])
    naive_pred = (x @ w.T + b).argmax(1)
    naive = {
        "trained_on": "Trans-thalamic = HC18, Trans-ventricular = FPDB-TV, Trans-cerebellum = FPDB-brain-rf",
        "tested_on_other_source": _recall_rows(y, naive_pred, src, ~naive_train),
    }

    # 3. all sources, source-balanced weights, patient-grouped cross-validation (out-of-fold predictions)
    folds = StratifiedGroupKFold(SUBPLANE_FOLDS, shuffle=True, random_state=0)
    oof = np.zeros((len(y), len(BRAIN_PLANE_CLASSES)))
    for trn, tst in folds.split(x, y, groups):
        w, b = _fit_probe(x[trn], y[trn], src[trn])
        oof[tst] = x[tst] @ w.T + b
    pred = oof.argmax(1)
    fpdb = src != "HC18"
    # 4. FETAL_PLANES_DB images only (one hospital group): anatomy without the HC18-vs-Barcelona cue
    oof_fpdb = np.full(len(y), -1)
    for trn, tst in folds.split(x[fpdb], y[fpdb], groups[fpdb]):
        idx = np.flatnonzero(fpdb)
        w, b = _fit_probe(x[idx[trn]], y[idx[trn]], src[idx[trn]])
        oof_fpdb[idx[tst]] = (x[idx[tst]] @ w.T + b).argmax(1)

    def recall(mask: np.ndarray, p: np.ndarray, k: int) -> float | None:
        m = mask & (y == k)
        return float((p[m] == k).mean()) if m.any() else None

    tt, tv_k = BRAIN_PLANE_CLASSES.index("Trans-thalamic"), BRAIN_PLANE_CLASSES.index("Trans-ventricular")
    shortcut = {
        "trans_thalamic_recall_hc18": recall(src == "HC18", pred, tt),
        "trans_thalamic_recall_fpdb": recall(src == "FPDB-brain-rf", pred, tt),
        "trans_ventricular_recall_fpdb_tv_png": recall(src == "FPDB-TV", pred, tv_k),
        "trans_ventricular_recall_fpdb_rf_jpg": recall(src == "FPDB-brain-rf", pred, tv_k),
        "naive_trans_thalamic_recall_on_fpdb": recall(
            ~naive_train & (src == "FPDB-brain-rf"), naive_pred, tt
        ),
    }
    gap_tt = shortcut["trans_thalamic_recall_hc18"] - shortcut["trans_thalamic_recall_fpdb"]
    gap_tv = (
        shortcut["trans_ventricular_recall_fpdb_tv_png"] - shortcut["trans_ventricular_recall_fpdb_rf_jpg"]
    )
    confounded = bool(gap_tt > 0.1 or gap_tv > 0.1)
    w_all, b_all = _fit_probe(x, y, src)
    study = {
        "features": "spatial mean of SonoNet's last feature stage (128 values), frozen; sector crop on",
        "classifier": f"multinomial logistic regression, standardised features, C={SUBPLANE_C}, class- and "
        "source-balanced sample weights",
        "counts": counts,
        "sononet_cb_tv": {
            "what": "SonoNet's own Brain (Cb.) vs Brain (Tv.) logit on each sub-plane (nothing "
            "fitted): Cb. should mean Trans-cerebellum",
            "rows": sononet_rows,
        },
        "naive_source_confounded_design": naive,
        "cross_validation": {
            "what": f"{SUBPLANE_FOLDS}-fold cross-validation grouped by patient/subject; every image "
            "predicted by "
            "a probe that never saw its patient",
            "accuracy": float((pred == y).mean()),
            "balanced_accuracy": _balanced(y, pred, np.ones(len(y), bool)),
            "balanced_accuracy_fpdb_only_images": _balanced(y, pred, fpdb),
            "rows": _recall_rows(y, pred, src, np.ones(len(y), bool)),
        },
        "fpdb_only_cross_validation": {
            "what": "the same probe trained and tested on FETAL_PLANES_DB images only (no HC18)",
            "balanced_accuracy": _balanced(y, oof_fpdb, fpdb),
            "rows": _recall_rows(y, oof_fpdb, src, fpdb),
        },
        "source_shortcut_check": {
            **shortcut,
            "trans_thalamic_gap": gap_tt,
            "trans_ventricular_gap": gap_tv,
            "source_confounded": confounded,
            "rule": "confounded when the recall of one class differs by more than 10 "
            "points between its sources",
        },
    }
    return {
        "study": study,
        "oof_logits": oof,
        "y": y,
        "groups": groups,
        "sources": src,
        "weight": w_all,
        "bias": b_all,
        "confounded": confounded,
    }


def readable(folder: Path) -> None:
    """Bundle files readable by everyone (safetensors writes its file owner-only)."""
    for path in folder.iterdir():
        if path.is_file():
            path.chmod(0o644)


# ----------------------------------------------------------------------------------- ONNX and speed
def onnx_parity(bundle_dir: Path, inputs: torch.Tensor) -> dict[str, Any]:
    bundle = load_bundle(bundle_dir)
    torch_p = TorchPredictor(bundle.model, bundle.temperature).predict_proba(inputs)
    onnx_p = OnnxPredictor(bundle_dir / "model.onnx", bundle.temperature, intra_op_threads=1).predict_proba(
        inputs
    )
    diff = float(np.abs(torch_p - onnx_p).max())
    if diff > PARITY_TOLERANCE:
        raise SystemExit(f"ONNX twin of {bundle_dir} differs from PyTorch by {diff:.2e} > {PARITY_TOLERANCE}")
    return {
        "max_abs_prob_diff": diff,
        "n_images": int(len(inputs)),
        "tolerance": PARITY_TOLERANCE,
        "same_top1": bool((torch_p.argmax(1) == onnx_p.argmax(1)).all()),
    }


def latency(bundle_dir: Path, image_paths: list[Path], runs: int, cache: Path) -> dict[str, Any]:
    bench = load_bench_module()
    out = cache / f"bench-{bundle_dir.name}.json"
    bench.main(
        [
            str(bundle_dir),
            "--images",
            *map(str, image_paths),
            "--threads",
            "1",
            "--runs",
            str(runs),
            "--batch",
            "8",
            "--batch-runs",
            "3",
            "--int8",
            "off",  # int8 is measured by scripts/quantize_bundle.py, after the fp32 model is final
            "--json",
            str(out),
        ]
    )
    result = json.loads(out.read_text())
    b1 = {k: v["batch1_p50_ms"] for k, v in result["results"].items()}
    return {
        "threads": 1,
        "runs": runs,
        "batch1_p50_ms": b1,
        "onnx_over_torch_latency_ratio": b1["onnxruntime"] / b1["torch_eager"],
        "speedup_batch1_p50": result["speedup_batch1_p50"],
        "images_per_s_batch8": {k: v["batch8_images_per_s"] for k, v in result["results"].items()},
        "machine": result["machine"],
        "measured_by": "benchmarks/bench_inference.py",
    }


# ------------------------------------------------------------------------------------------- report
def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _acc_cell(correct: int, n: int, min_n: int = 10) -> str:
    return f"{correct}/{n}" + ("" if n < min_n else f" ({_pct(correct / n)})")


def extra_markdown(extra: dict[str, Any]) -> str:
    """SonoNet-specific sections appended to report.md (formatting only; numbers from ``extra``)."""
    lines = ["", "## SonoNet-specific checks", "",
             "The tables above score the shipped model. Its calibration is a temperature on SonoNet's 14 "
             "logits inside the model, so the card's softmax temperature is 1 and the 'before (T = 1)' row "
             "above is already the calibrated model. Before/after the temperature fit:", ""]
    cal = extra["calibration"]
    lines += [
        "### Calibration (temperature on SonoNet's 14 logits, before the plane mapping)",
        "",
        f"Temperature {cal['temperature']:.3f}, fitted on {cal['n_calibration']} calibration images "
        f"({', '.join(f'{k}: {v}' for k, v in cal['calibration_counts'].items())}); per-class bias not "
        f"fitted ({cal['bias_note']}).",
        "",
        "| test images | n | ECE before (T=1) | ECE after | NLL before | NLL after | accuracy before | "
        "accuracy after |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in cal["test"]:
        lines.append(
            f"| {row['subset']} | {row['n']} | {row['before']['ece']:.4f} | {row['after']['ece']:.4f} | "
            f"{row['before']['nll']:.4f} | {row['after']['nll']:.4f} | "
            f"{_acc_cell(row['before']['correct'], row['n'])} | "
            f"{_acc_cell(row['after']['correct'], row['n'])} |"
        )
    lines += [
        "",
        "### Test accuracy per class and source (shipped model)",
        "",
        "| class | source | correct / n |",
        "| --- | --- | --- |",
    ]
    for row in extra["per_source"]:
        lines.append(f"| {row['class']} | {row['source']} | {_acc_cell(row['correct'], row['n'])} |")
    lines += [
        "",
        "Classes with no real test images here: "
        + ", ".join(extra["classes_without_real_images"])
        + " (no percentage can be given).",
        "",
    ]
    lines += [
        "### Fetal brain by head circumference (HC18 test images; gestational-age proxy)",
        "",
        "| HC (mm) | correct / n |",
        "| --- | --- |",
    ]
    lines += [
        f"| {r['head_circumference_mm']} | {_acc_cell(r['correct'], r['n'])} |" for r in extra["hc18_by_hc"]
    ]
    sc = extra["sector_crop"]
    lines += [
        "",
        "### Sector crop vs whole-image resize (all real images, T = 1)",
        "",
        sc["what"] + ".",
        "",
        "| source | n | resize | sector crop | fixed by crop | broken by crop |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in sc["rows"]:
        lines.append(
            f"| {r['source']} | {r['n']} | {_acc_cell(r['correct_resize'], r['n'])} | "
            f"{_acc_cell(r['correct_sector_crop'], r['n'])} | {r['fixed_by_crop']} | {r['broken_by_crop']} |"
        )
    lines += [
        "",
        "### SonoNet's own 14-plane prediction on the test images",
        "",
        "| source | label | n | SonoNet top-1 counts |",
        "| --- | --- | --- | --- |",
    ]
    for r in extra["native_top1"]:
        top = ", ".join(f"{k} {v}" for k, v in r["sononet_top1"].items())
        lines.append(f"| {r['source']} | {r['label']} | {r['n']} | {top} |")
    onnx = extra["onnx"]
    lines += [
        "",
        "### ONNX twin",
        "",
        f"Max |probability difference| PyTorch vs ONNX Runtime on {onnx['parity']['n_images']} real images: "
        f"{onnx['parity']['max_abs_prob_diff']:.2e} (tolerance {onnx['parity']['tolerance']:.0e}). "
        "Batch-1 median latency, 1 thread: PyTorch "
        f"{onnx['latency']['batch1_p50_ms']['torch_eager']:.1f} ms, "
        f"ONNX Runtime {onnx['latency']['batch1_p50_ms']['onnxruntime']:.1f} ms "
        f"(ONNX/PyTorch latency ratio {onnx['latency']['onnx_over_torch_latency_ratio']:.2f}).",
        "",
    ]
    return "\n".join(lines)


def subplane_markdown(study: dict[str, Any]) -> str:
    lines = [
        "",
        "## Brain sub-plane: anatomy or image source?",
        "",
        f"Features: {study['features']}. Classifier: {study['classifier']}.",
        "",
        "### SonoNet's own Brain (Cb.) / Brain (Tv.) on each sub-plane (nothing fitted)",
        "",
        "| source | true sub-plane | n | SonoNet says Cb. | SonoNet says Tv. |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in study["sononet_cb_tv"]["rows"]:
        lines.append(
            f"| {r['source']} | {r['true']} | {r['n']} | {r['sononet_says_cb']} | {r['sononet_says_tv']} |"
        )
    naive = study["naive_source_confounded_design"]
    lines += [
        "",
        f"### Naive design ({naive['trained_on']}), tested on the other source",
        "",
        "| source | true | correct / n | predicted |",
        "| --- | --- | --- | --- |",
    ]
    for r in naive["tested_on_other_source"]:
        lines.append(
            f"| {r['source']} | {r['true']} | {_acc_cell(r['correct'], r['n'])} | "
            f"{', '.join(f'{k} {v}' for k, v in r['predicted'].items())} |"
        )
    for key in ("cross_validation", "fpdb_only_cross_validation"):
        cv = study[key]
        lines += [
            "",
            f"### {cv['what']}",
            "",
            f"Balanced accuracy {_pct(cv['balanced_accuracy'])}.",
            "",
            "| source | true | correct / n | predicted |",
            "| --- | --- | --- | --- |",
        ]
        for r in cv["rows"]:
            lines.append(
                f"| {r['source']} | {r['true']} | {_acc_cell(r['correct'], r['n'])} | "
                f"{', '.join(f'{k} {v}' for k, v in r['predicted'].items())} |"
            )
    sc = study["source_shortcut_check"]
    lines += [
        "",
        "### Source-shortcut check",
        "",
        f"Trans-thalamic recall: HC18 {_pct(sc['trans_thalamic_recall_hc18'])} vs FETAL_PLANES_DB "
        f"{_pct(sc['trans_thalamic_recall_fpdb'])} (gap {100 * sc['trans_thalamic_gap']:.1f} points). "
        "Trans-ventricular recall: full-size PNG (FPDB-TV) "
        f"{_pct(sc['trans_ventricular_recall_fpdb_tv_png'])} "
        f"vs 256 px JPG (FPDB-brain-rf) {_pct(sc['trans_ventricular_recall_fpdb_rf_jpg'])} "
        f"(gap {100 * sc['trans_ventricular_gap']:.1f} points). Rule: {sc['rule']}. "
        f"Verdict: {'SOURCE-CONFOUNDED' if sc['source_confounded'] else 'no gap above the rule'}.",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- main
def build_planes_bundle(
    args: argparse.Namespace,
    images: list[RealImage],
    outs: dict[bool, dict[str, np.ndarray]],
    weights_sha: str,
) -> dict[str, Any]:
    out = outs[True]
    split = np.array([split_of(im.group) if im.source in CALIBRATION_SOURCES else "test" for im in images])
    src = np.array([im.source for im in images])
    y5 = np.array([PLANES_COVERED.index(im.plane) for im in images])
    cal, test = split == "calibration", split == "test"
    assert not (
        {im.group for im, c in zip(images, cal, strict=True) if c}
        & {im.group for im, t in zip(images, test, strict=True) if t}
    ), "a group sits in both splits"

    model = create_model("sononet16_planes", len(PLANES_COVERED), pretrained=True).eval()
    fit = model.head.mapping.fit(torch.from_numpy(out["native"][cal]), torch.from_numpy(y5[cal]))
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

    folder = args.out / "sononet-planes"
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
        title="sononet-planes: SonoNet-16 mapped to FETAL_PLANES_DB planes, real held-apart test images",
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
        "name": "sononet-planes",
        "version": "1.0.0",
        "task": "planes",
        "classes": list(PLANES_COVERED),
        "classes_not_covered": list(PLANES_NOT_COVERED),
        "label_space": list(PLANE_CLASSES),
        "preprocess": SONONET_PREPROCESS.to_dict(),
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
    save_bundle(model, folder, card, onnx=True)
    readable(folder)
    # ONNX parity on real test images, latency via benchmarks/bench_inference.py
    cfg = SONONET_PREPROCESS
    sample = [im for im in test_imgs if im.source != "web-abnormal-rf"][:: max(1, len(test_imgs) // 48)][:48]
    inputs = torch.stack([to_tensor(load_image(im.path), cfg) for im in sample])
    extra["onnx"] = {
        "parity": onnx_parity(folder, inputs),
        "latency": latency(folder, [im.path for im in sample[:8]], args.bench_runs, args.cache),
    }
    card["onnx"] = extra["onnx"]
    card["metrics"]["onnx_over_torch_latency_ratio"] = extra["onnx"]["latency"][
        "onnx_over_torch_latency_ratio"
    ]
    save_bundle(model, folder, card, onnx=True)
    readable(folder)
    report["sononet"] = extra
    # evaluate's report files, then the SonoNet-specific sections appended to report.md
    from fetalscope.evaluate import write_report

    write_report(report, folder, y=y_test6, probs=to_plane_space(p_test))
    with open(folder / "report.md", "a", encoding="utf-8") as fh:
        fh.write(extra_markdown(extra))
    return {"report": report, "extra": extra, "card": card}


def build_subplane_bundle(
    args: argparse.Namespace, images: list[RealImage], out: dict[str, np.ndarray], planes_folder: Path
) -> dict[str, Any]:
    result = brain_subplane_study(images, out)
    study = result["study"]
    model = create_model("sononet16", len(BRAIN_PLANE_CLASSES), pretrained=True, head="linear").eval()
    with torch.no_grad():
        model.head.fc.weight.copy_(torch.from_numpy(result["weight"]).float())
        model.head.fc.bias.copy_(torch.from_numpy(result["bias"]).float())
    folder = args.out / "sononet-brain-planes"
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
            f"Source shortcut: Trans-thalamic recall {_pct(sc['trans_thalamic_recall_hc18'])} on HC18 "
            "(one Dutch "
            f"centre) but {_pct(sc['trans_thalamic_recall_fpdb'])} on FETAL_PLANES_DB (Barcelona); "
            f"Trans-ventricular {_pct(sc['trans_ventricular_recall_fpdb_tv_png'])} on full-size PNGs vs "
            f"{_pct(sc['trans_ventricular_recall_fpdb_rf_jpg'])} on 256 px JPGs. Part of what it learned is "
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
    from fetalscope.evaluate import write_report

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_shared_option(parser, "data/ and weights/")
    parser.add_argument("--out", type=Path, default=config.bundled_models_dir(), help="where the bundles go")
    parser.add_argument(
        "--cache", type=Path, default=None, help="cache folder (default <cache>/sononet_build)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--bench-runs", type=int, default=30, help="timed batch-1 calls per runtime")
    parser.add_argument("--no-int8", action="store_true",
                        help="skip the int8 step (scripts/quantize_bundle.py: model.int8.onnx + card 'int8')")
    args = parser.parse_args(argv)
    apply_shared_option(args)
    args.cache = args.cache or (config.cache_dir() / "sononet_build")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    npz = sononet16_npz_path()
    weights_sha = file_sha256(npz)
    images = all_real_images(config.shared_data_dir())
    print(f"{len(images)} real images: {count_table([(im.source, im.plane) for im in images])}")
    model = create_model("sononet16_planes", len(PLANES_COVERED), pretrained=True).eval()
    outs = {
        crop: sononet_outputs(
            model, images, SONONET_PREPROCESS.replace(crop_sector=crop), args.cache, weights_sha
        )
        for crop in (False, True)
    }
    planes = build_planes_bundle(args, images, outs, weights_sha)
    sub = build_subplane_bundle(args, images, outs[True], args.out / "sononet-planes")
    if not args.no_int8:  # the card was rewritten above: quantise from the new model.onnx, re-measure
        import quantize_bundle

        quantize_bundle.run(args.out / "sononet-planes", bench_runs=args.bench_runs, threads=args.threads)
    else:
        for stale in ("model.int8.onnx", "int8_calibration.json"):  # they would describe the old model
            (args.out / "sononet-planes" / stale).unlink(missing_ok=True)
    summary = {
        "sononet-planes": {
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
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
