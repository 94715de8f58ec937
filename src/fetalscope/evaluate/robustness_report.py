"""The robustness record of :func:`fetalscope.evaluate.robustness.robustness_report` as files and Markdown.

Formatting only: every number is read from the record. :func:`write_robustness` writes ``robustness.json`` and
``robustness.md``; :func:`update_report_section` puts a short "Robustness" section (headline and a link to
``robustness.md``) into a bundle's ``report.md``, replacing the one written before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fetalscope.evaluate.markdown import DASH, format_percent, markdown_table

JSON_NAME = "robustness.json"
MD_NAME = "robustness.md"
SECTION_START = "<!-- robustness:start -->"
SECTION_END = "<!-- robustness:end -->"


def _acc(cell: dict[str, Any] | None) -> str:
    if not cell or cell.get("estimate") is None:
        return DASH
    text = f"{format_percent(cell['estimate'])} [{format_percent(cell['lower'])}, {format_percent(cell['upper'])}]"
    return text + (" (few groups)" if cell.get("too_few_groups") else "")


def _diff(cell: dict[str, Any] | None) -> str:
    if not cell or cell.get("estimate") is None:
        return DASH

    def pp(x: float) -> str:
        return f"{100 * x:+.1f}"

    return f"{pp(cell['estimate'])} pp [{pp(cell['lower'])}, {pp(cell['upper'])}]"


def _flag(row: dict[str, Any]) -> str:
    return DASH if row.get("at_or_above") is None else ("yes" if row["at_or_above"] else "**no**")


def _table(rows: list[dict[str, Any]], first: str, setting: bool) -> list[str]:
    header = [first] + (["setting"] if setting else []) + [
        "n (groups)", "shipped accuracy [95% CI]", "baseline accuracy [95% CI]", "difference [95% CI]",
        "at or above baseline"]
    body = [[r["row"]] + ([r.get("setting", "")] if setting else []) + [
        f"{r['n']} ({r['n_groups']})", _acc(r["shipped"]), _acc(r["baseline"]), _diff(r["difference"]), _flag(r)]
        for r in rows]
    return markdown_table(header, body)


def headline(report: dict[str, Any]) -> str:
    """One sentence: how many rows the shipped model is at or above the baseline on, and which not."""
    summary = report["summary"]
    if not summary["rows_compared"]:
        return "No baseline was run, so no row is compared."
    text = (f"The shipped model is at or above the baseline on {summary['rows_at_or_above']} of "
            f"{summary['rows_compared']} rows")
    below = summary["rows_below"]
    return text + (f"; below it on: {', '.join(below)}." if below else " (target met).")


def render_robustness_markdown(report: dict[str, Any]) -> str:
    shipped, baseline, data, settings = report["shipped"], report["baseline"], report["data"], report["settings"]
    lines = [f"# {report['title']}", "",
             "Written by `fetalscope robustness` (`fetalscope.evaluate.robustness`); every number below is "
             "computed by that code.", "",
             f"- Shipped model: {shipped['described']}.",
             f"- Baseline: {baseline['described'] if baseline else 'none'}.",
             f"- Data: {data['described'] or 'labelled images'}: {data['n_images']} images, {data['n_groups']} "
             f"groups ({', '.join(f'{k} {v}' for k, v in data['sources'].items())}; labels "
             f"{', '.join(f'{k} {v}' for k, v in data['labels'].items())}).",
             f"- Intervals: {settings['confidence']:.0%} percentile bootstrap, {settings['n_boot']} resamples of "
             f"whole {settings['bootstrap_unit']}, seed {settings['seed']}; the difference is shipped - baseline "
             "on the same resamples (pp = percentage points).",
             f"- Took {report['seconds']} s.", "",
             headline(report), "",
             "## Accuracy per source (every image, unperturbed)", ""]
    lines += _table(report["per_source"], "source", setting=False)
    sub = data["subsample"]
    lines += ["## Accuracy under perturbations", "",
              f"A fixed subsample of {sub['n']} images ({sub['how']}, seed {sub['seed']}: "
              f"{', '.join(f'{k} {v}' for k, v in sub['sources'].items())}), each perturbed on its full "
              "image before each model's own preprocessing, both models on the same pixels. Perturbations: "
              "`fetalscope.imaging.perturb`"
              + (f"; video codec here: {settings['video_codec']}" if settings.get("video_codec") else "") + ".", ""]
    lines += _table(report["per_perturbation"], "perturbation@strength", setting=True)
    return "\n".join(lines)


def write_robustness(report: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """``robustness.json`` and ``robustness.md`` in ``out_dir`` (created); returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / JSON_NAME, out / MD_NAME
    json_path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    md_path.write_text(render_robustness_markdown(report), encoding="utf-8")
    return json_path, md_path


def report_section(report: dict[str, Any]) -> str:
    """The bundle report's "Robustness" section: headline, worst rows and a link to the full table."""
    compared = [r for r in report["per_source"] + report["per_perturbation"] if r.get("difference")]
    worst = sorted(compared, key=lambda r: r["difference"]["estimate"])[:5]
    lines = [SECTION_START, "## Robustness", "",
             f"{headline(report)} Full table (per source and per perturbation at three strengths, shipped "
             f"beside the baseline, bootstrap 95% intervals): [{MD_NAME}]({MD_NAME}), numbers in "
             f"[{JSON_NAME}]({JSON_NAME}).", ""]
    if worst:
        lines += ["Rows where the shipped model does worst against the baseline:", ""]
        lines += _table(worst, "row", setting=False)
    lines.append(SECTION_END)
    return "\n".join(lines) + "\n"


def update_report_section(report_md: str | Path, report: dict[str, Any]) -> None:
    """Put :func:`report_section` at the end of ``report_md``, replacing an earlier robustness section."""
    path = Path(report_md)
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    start, end = text.find(SECTION_START), text.find(SECTION_END)
    if start != -1 and end != -1:
        text = text[:start] + text[end + len(SECTION_END):].lstrip("\n")
    path.write_text(text.rstrip("\n") + "\n\n" + report_section(report), encoding="utf-8")
