"""The studies behind the SonoNet bundles' reports: sector crop vs plain resize, SonoNet's own top-1 per
source, Fetal brain accuracy by head circumference, and the brain sub-plane probe on frozen SonoNet features
with its source-shortcut check. Numbers only; :mod:`.markdown` formats them."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np

from fetalscope.data.labels import BRAIN_PLANE_CLASSES
from fetalscope.data.real_sets import RealImage
from fetalscope.models.sononet import PLANES_COVERED, SONONET_CLASSES
from fetalscope.train.recipes.sononet.common import frac
from fetalscope.train.recipes.sononet.outputs import mapped_probs

SUBPLANE_C = 0.01  # inverse L2 strength of the brain sub-plane logistic regression (features standardised)
SUBPLANE_FOLDS = 5
SUBPLANE_SPLIT_NOTE = (
    f"{SUBPLANE_FOLDS}-fold cross-validation grouped by patient/subject for every reported "
    "number; the shipped probe is refitted on all images"
)


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

