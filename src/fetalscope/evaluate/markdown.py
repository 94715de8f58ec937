"""Render an evaluation report dict (from ``evaluate_predictions``) as readable Markdown.

Formatting only: every number shown is read from the dict. Where a class or group has too few
test images (``too_few``), counts are printed instead of a bare percentage.
"""

from __future__ import annotations

from typing import Any

DASH = "–"


def format_percent(x: float | None) -> str:
    return DASH if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, digits: int = 3) -> str:
    return DASH if x is None else f"{x:.{digits}f}"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |",
             "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _ci(ci: dict[str, Any] | None, *, percent: bool) -> str:
    if not ci or ci.get("lower") is None:
        return DASH
    fmt = format_percent if percent else _num
    text = f"{fmt(ci['lower'])} to {fmt(ci['upper'])}"
    if ci.get("too_few_units"):
        unit = "patients" if ci["unit"] == "group" else "images"
        text += f" (only {ci['n_units']} {unit}: unreliable)"
    return text


def _headline(report: dict[str, Any]) -> list[str]:
    m, cis = report["metrics"], report["confidence_intervals"]
    any_ci = next(iter(cis.values()), None)
    unit = "patient" if any_ci and any_ci["unit"] == "group" else "image"
    conf = int(round(100 * any_ci["confidence"])) if any_ci else 95
    ci_head = (f"{conf}% CI (bootstrap, {any_ci['n_boot']} resamples of {any_ci['n_units']} {unit}s)"
               if any_ci else "CI")
    few = m["too_few"]
    acc = f"{m['correct']}/{m['n']} correct" + ("" if few else f" = {format_percent(m['accuracy'])}")
    rows: list[list[object]] = [["Accuracy", acc, DASH if few else _ci(cis.get("accuracy"), percent=True)]]
    if m["accuracy_on_covered"] is not None and m["n_on_covered"] != m["n"]:
        rows.append([f"Accuracy on covered classes ({m['n_on_covered']} images)",
                     format_percent(m["accuracy_on_covered"]), DASH])
    for key, label, percent in (("balanced_accuracy", "Balanced accuracy", True),
                                ("macro_f1", "Macro F1", False), ("weighted_f1", "Weighted F1", False)):
        value = m[key]
        shown = (format_percent(value) if percent else _num(value)) if not few else DASH
        rows.append([label, shown, DASH if few else _ci(cis.get(key), percent=percent)])
    rows.append(["ROC AUC (one-vs-rest, macro)",
                 _num(m["roc_auc"]["macro"]) + f" over {m['roc_auc']['n_classes_averaged']} classes", DASH])
    rows.append(["Log loss", _num(m["log_loss"]), DASH])
    lines = markdown_table(["Metric", "Value", ci_head], rows)
    if few:
        lines.insert(0, f"**Only {m['n']} test images (< {m['min_support']}): too few for percentages; "
                        "counts are shown instead.**\n")
    lines.append(f"Balanced accuracy and F1 average over {len(m['averaged_over'])} classes: "
                 f"{', '.join(m['averaged_over']) or 'none'}.")
    lines.append("")
    return lines


def _per_class(report: dict[str, Any]) -> list[str]:
    m = report["metrics"]
    rows = []
    for c in m["per_class"]:
        notes = "; ".join(c["notes"])
        if c["status"] == "not_covered":
            rows.append([c["class"], c["support"], "not covered", "not covered", "not covered",
                         "not covered", notes])
        elif c["status"] == "no_support":
            prec = DASH if c["precision"] is None else f"0 of {c['predicted']} predictions right"
            rows.append([c["class"], 0, prec, "no test images", DASH, DASH, notes])
        elif c["too_few"]:
            prec = DASH if c["predicted"] == 0 else f"{c['correct']} of {c['predicted']} predictions right"
            rows.append([c["class"], c["support"], prec, f"{c['correct']} of {c['support']} found",
                         "too few images", "too few images", notes])
        else:
            prec = "never predicted" if c["precision"] is None else format_percent(c["precision"])
            rows.append([c["class"], c["support"], prec, format_percent(c["recall"]), _num(c["f1"]),
                         _num(c["roc_auc"]), notes])
    return markdown_table(["Class", "Test images", "Precision", "Recall", "F1", "ROC AUC", "Notes"], rows)


def _confusion(report: dict[str, Any]) -> list[str]:
    cm = report["metrics"]["confusion_matrix"]
    rows = [[name, *row] for name, row in zip(cm["labels"], cm["counts"], strict=True)]
    return markdown_table(["true \\ predicted", *cm["labels"]], rows)


def _calibration(report: dict[str, Any]) -> list[str]:
    cal = report["calibration"]
    if cal["before"] is None:
        return [cal["note"] or "Calibration not computed.", ""]
    lines = [f"Top-label confidence in {cal['n_bins']} equal-width bins, on {cal['n_images']} "
             f"{cal['scope']}; logits from {cal['logits_source']}.", ""]
    rows = [["before (T = 1)", _num(cal["before"]["ece"]), _num(cal["before"]["mce"]),
             _num(cal["before"]["nll"])]]
    if cal["after"] is not None:
        rows.append([f"after (T = {cal['temperature']:.3f}, fitted on {cal['n_val']} validation images)",
                     _num(cal["after"]["ece"]), _num(cal["after"]["mce"]), _num(cal["after"]["nll"])])
    lines += markdown_table(["", "ECE", "MCE", "NLL"], rows)
    if cal["note"]:
        lines += [f"Note: {cal['note']}.", ""]
    if cal["n_images"] < report["min_support"] * 3:
        lines += [f"With {cal['n_images']} images most bins hold very few; read ECE as a rough guide.", ""]
    return lines


def _breakdowns(report: dict[str, Any]) -> list[str]:
    b = report["breakdowns"]
    if not b:
        return ["No metadata given.", ""]
    lines: list[str] = []
    for col, rows in b["columns"].items():
        lines.append(f"### By {col}")
        lines.append("")
        table = []
        for r in rows:
            patients = DASH if r["n_patients"] is None else r["n_patients"]
            if r["too_few"]:
                table.append([r["value"], r["n"], patients, f"{r['correct']} of {r['n']} correct",
                              DASH, DASH, f"too few images (< {b['min_count']})"])
            else:
                table.append([r["value"], r["n"], patients, format_percent(r["accuracy"]), _num(r["macro_f1"]),
                              _num(r["weighted_f1"]), ""])
        lines += markdown_table([col, "Images", "Patients", "Accuracy", "Macro F1", "Weighted F1", "Flag"], table)
    if b["missing_columns"]:
        lines += [f"Columns not in the metadata: {', '.join(b['missing_columns'])}.", ""]
    return lines


def _plots(report: dict[str, Any]) -> list[str]:
    titles = {"confusion_counts": "Confusion matrix (counts)",
              "confusion_normalized": "Confusion matrix (row-normalised)",
              "reliability": "Reliability diagram", "roc": "ROC curves (one-vs-rest)"}
    lines = []
    for key, files in report["plots"].items():
        lines += [f"![{titles.get(key, key)}]({files['png']})", "",
                  f"Data: [{files['json']}]({files['json']})", ""]
    return lines


def _coverage(report: dict[str, Any]) -> list[str]:
    """A bold line before the summary when some covered classes have no test images: which classes the
    numbers were measured on, and which they say nothing about."""
    per_class = report["metrics"]["per_class"]
    measured = [c for c in per_class if c["status"] != "not_covered" and c["support"] > 0]
    missing = [c["class"] for c in per_class if c["status"] == "no_support"]
    if not missing:
        return []
    covered = len([c for c in per_class if c["status"] != "not_covered"])
    on = ", ".join(f"{c['class']} ({c['support']})" for c in measured) or "none"
    return [f"**Measured on test images of {len(measured)} of the {covered} classes the model covers: {on}. "
            f"No test images of {', '.join(missing)}: these numbers say nothing about those planes.**", ""]


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: headline with CIs, per-class table, confusion matrix, calibration,
    breakdowns and the plots as relative image links."""
    m = report["metrics"]
    groups = f", {report['n_groups']} patients" if report["n_groups"] is not None else ""
    lines = [f"# {report['title']}", "",
             f"{report['n_images']} test images{groups}, {len(report['classes'])} classes. "
             f"fetalscope {report['fetalscope_version']}, {report['created_utc']}.", ""]
    for key, value in (report.get("context") or {}).items():
        lines.append(f"- **{key}**: {value}")
    if report.get("context"):
        lines.append("")
    if m["not_covered"]:
        lines.append("Classes the model does not cover (no scores shown for them): " + "; ".join(
            f"{c['class']} ({c['support']} test images; {c['reason']})" for c in m["not_covered"]))
        lines.append("")
    lines += _coverage(report)
    lines += ["## Summary", "", *_headline(report)]
    lines += ["## Per class", "", *_per_class(report)]
    lines += [f"Classes with fewer than {m['min_support']} test images show counts, not percentages.", ""]
    lines += ["## Confusion matrix (counts; rows true, columns predicted)", "", *_confusion(report)]
    lines += ["## Calibration", "", *_calibration(report)]
    lines += ["## Breakdown by acquisition", "", *_breakdowns(report)]
    if report["plots"]:
        lines += ["## Plots", "", *_plots(report)]
    return "\n".join(lines).rstrip() + "\n"
