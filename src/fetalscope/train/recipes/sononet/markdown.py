"""Markdown sections the SonoNet recipe appends to its bundles' ``report.md`` (formatting only: every number
is read from the study records; tables and percentages through :mod:`fetalscope.evaluate.markdown`)."""

from __future__ import annotations

from typing import Any

from fetalscope.evaluate.markdown import format_percent as pct
from fetalscope.evaluate.markdown import markdown_table as table


def acc_cell(correct: int, n: int, min_n: int = 10) -> str:
    """``correct/n``, with the percentage only from ``min_n`` images on."""
    return f"{correct}/{n}" + ("" if n < min_n else f" ({pct(correct / n)})")


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def extra_markdown(extra: dict[str, Any]) -> str:
    """SonoNet-specific sections appended to sononet-planes' report.md (numbers from ``extra``: calibration,
    per-source accuracy, head-circumference bins, sector crop, SonoNet's own top-1, ONNX parity and latency)."""
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
    ]
    lines += table(
        ["test images", "n", "ECE before (T=1)", "ECE after", "NLL before", "NLL after", "accuracy before",
         "accuracy after"],
        [[row["subset"], row["n"], f"{row['before']['ece']:.4f}", f"{row['after']['ece']:.4f}",
          f"{row['before']['nll']:.4f}", f"{row['after']['nll']:.4f}", acc_cell(row["before"]["correct"], row["n"]),
          acc_cell(row["after"]["correct"], row["n"])] for row in cal["test"]],
    )
    lines += ["### Test accuracy per class and source (shipped model)", ""]
    lines += table(["class", "source", "correct / n"],
                   [[row["class"], row["source"], acc_cell(row["correct"], row["n"])] for row in extra["per_source"]])
    lines += [
        "Classes with no real test images here: "
        + ", ".join(extra["classes_without_real_images"])
        + " (no percentage can be given).",
        "",
    ]
    lines += ["### Fetal brain by head circumference (HC18 test images; gestational-age proxy)", ""]
    lines += table(["HC (mm)", "correct / n"],
                   [[r["head_circumference_mm"], acc_cell(r["correct"], r["n"])] for r in extra["hc18_by_hc"]])
    sc = extra["sector_crop"]
    lines += ["### Sector crop vs whole-image resize (all real images, T = 1)", "", sc["what"] + ".", ""]
    lines += table(
        ["source", "n", "resize", "sector crop", "fixed by crop", "broken by crop"],
        [[r["source"], r["n"], acc_cell(r["correct_resize"], r["n"]), acc_cell(r["correct_sector_crop"], r["n"]),
          r["fixed_by_crop"], r["broken_by_crop"]] for r in sc["rows"]],
    )
    lines += ["### SonoNet's own 14-plane prediction on the test images", ""]
    lines += table(["source", "label", "n", "SonoNet top-1 counts"],
                   [[r["source"], r["label"], r["n"], _counts(r["sononet_top1"])] for r in extra["native_top1"]])
    onnx = extra["onnx"]
    lines += [
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


def _recall_table(rows: list[dict[str, Any]]) -> list[str]:
    return table(["source", "true", "correct / n", "predicted"],
                 [[r["source"], r["true"], acc_cell(r["correct"], r["n"]), _counts(r["predicted"])] for r in rows])


def subplane_markdown(study: dict[str, Any]) -> str:
    """The brain sub-plane study (``brain_subplane_study(...)["study"]``) as report.md sections."""
    lines = [
        "",
        "## Brain sub-plane: anatomy or image source?",
        "",
        f"Features: {study['features']}. Classifier: {study['classifier']}.",
        "",
        "### SonoNet's own Brain (Cb.) / Brain (Tv.) on each sub-plane (nothing fitted)",
        "",
    ]
    lines += table(["source", "true sub-plane", "n", "SonoNet says Cb.", "SonoNet says Tv."],
                   [[r["source"], r["true"], r["n"], r["sononet_says_cb"], r["sononet_says_tv"]]
                    for r in study["sononet_cb_tv"]["rows"]])
    naive = study["naive_source_confounded_design"]
    lines += [f"### Naive design ({naive['trained_on']}), tested on the other source", ""]
    lines += _recall_table(naive["tested_on_other_source"])
    for key in ("cross_validation", "fpdb_only_cross_validation"):
        cv = study[key]
        lines += [f"### {cv['what']}", "", f"Balanced accuracy {pct(cv['balanced_accuracy'])}.", ""]
        lines += _recall_table(cv["rows"])
    sc = study["source_shortcut_check"]
    lines += [
        "### Source-shortcut check",
        "",
        f"Trans-thalamic recall: HC18 {pct(sc['trans_thalamic_recall_hc18'])} vs FETAL_PLANES_DB "
        f"{pct(sc['trans_thalamic_recall_fpdb'])} (gap {100 * sc['trans_thalamic_gap']:.1f} points). "
        "Trans-ventricular recall: full-size PNG (FPDB-TV) "
        f"{pct(sc['trans_ventricular_recall_fpdb_tv_png'])} "
        f"vs 256 px JPG (FPDB-brain-rf) {pct(sc['trans_ventricular_recall_fpdb_rf_jpg'])} "
        f"(gap {100 * sc['trans_ventricular_gap']:.1f} points). Rule: {sc['rule']}. "
        f"Verdict: {'SOURCE-CONFOUNDED' if sc['source_confounded'] else 'no gap above the rule'}.",
        "",
    ]
    return "\n".join(lines)
