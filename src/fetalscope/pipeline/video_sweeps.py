"""The video pipeline scored on sweeps with known segments (:mod:`fetalscope.data.sweeps`): segment precision and
recall, the best frame of each shown plane inside that plane's segment, planes claimed that a sweep never shows,
per-frame accuracy inside segments; and the choice of smoothing / hysteresis / minimum segment length on a
separate set of sweeps (:func:`tune_rules`, from the per-frame probabilities, without classifying again)::

    runs = [run_sweep(session, sweep, folder) for sweep in sweeps]
    summary = summarise([r.score for r in runs])
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fetalscope.data.sweeps import Sweep
from fetalscope.pipeline.video import VideoAnalysis, analyse_video
from fetalscope.pipeline.video_segments import SegmentRules, best_positions, segments, smooth

MATCH_IOU = 0.5  # a found segment matches a true one of the same plane when their frames overlap this much
TARGETS = {"best_frame_hit_rate": (">=", 0.90), "absent_planes_claimed_per_10": ("<=", 2.0),
           "frame_accuracy_in_segments": (">=", 0.80)}
GRID = {"window": (1, 3, 5, 7, 9), "enter": (0.5, 0.6, 0.7, 0.8), "leave": (0.3, 0.4, 0.5),
        "min_frames": (2, 3, 5, 8)}


@dataclass
class SweepScore:
    """One sweep's counts."""

    name: str
    planes_shown: list[str]
    true_segments: int
    found_segments: int
    matched_segments: int
    best_frame_hits: int
    planes_claimed_absent: list[str]
    frames_in_segments: int
    frames_correct: int
    frames_correct_unsmoothed: int


@dataclass
class SweepRun:
    """A sweep through the pipeline: the score and the per-frame probabilities (for :func:`tune_rules`)."""

    sweep: Sweep
    classes: list[str]
    probabilities: np.ndarray
    score: SweepScore


def _iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = min(a[1], b[1]) - max(a[0], b[0]) + 1
    return 0.0 if inter <= 0 else inter / (max(a[1], b[1]) - min(a[0], b[0]) + 1)


def score_sweep(sweep: Sweep, classes: Sequence[str], probabilities: np.ndarray, smoothed: np.ndarray,
                found: Iterable[tuple[str, int, int]], best: dict[str, int],
                skip: Sequence[str] = ("Other",)) -> SweepScore:
    """Score one sweep processed at stride 1: ``found`` segments as (plane, first frame, last frame), ``best``
    frame per plane. Stills of a ``skip`` class (no standard plane) are background: neither segments to find
    nor frames to count."""
    found = list(found)
    truth = [(s.plane, s.start, s.end) for s in sweep.segments if s.plane not in skip]
    unmatched = list(found)
    matched = 0
    for plane, start, end in truth:
        for cand in unmatched:
            if cand[0] == plane and _iou((start, end), (cand[1], cand[2])) >= MATCH_IOU:
                unmatched.remove(cand)
                matched += 1
                break
    hits = sum(1 for plane, start, end in truth if plane in best and start <= best[plane] <= end)
    shown = sweep.planes
    claimed = sorted({p for p, *_ in found if p not in shown and p not in skip} | {p for p in best if p not in shown
                                                                                    and p not in skip})
    labelled = [i for i, t in enumerate(sweep.truth) if t is not None and t not in skip]
    correct = sum(1 for i in labelled if classes[int(np.argmax(smoothed[i]))] == sweep.truth[i])
    raw = sum(1 for i in labelled if classes[int(np.argmax(probabilities[i]))] == sweep.truth[i])
    return SweepScore(sweep.name, sorted(shown - set(skip)), len(truth), len(found), matched, hits, claimed,
                      len(labelled), correct, raw)


def score_analysis(sweep: Sweep, result: VideoAnalysis) -> SweepScore:
    """Score what :func:`~fetalscope.pipeline.video.analyse_video` said about a sweep (stride 1)."""
    if result.frame_indices != list(range(len(sweep.frames))):
        raise ValueError(f"{sweep.name}: the sweep must be processed frame by frame (stride 1, no budget)")
    found = [(s["plane"], s["start_frame"], s["end_frame"]) for s in result.segment_records()]
    best = {plane: record["frame"] for plane, record in result.best_frames.items()}
    return score_sweep(sweep, result.classes, result.probabilities, result.smoothed, found, best)


def rescore(run: SweepRun, rules: SegmentRules) -> SweepScore:
    """The sweep scored again with other ``rules`` from its stored probabilities (no quality weighting)."""
    smoothed = smooth(run.probabilities, rules.window)
    found = segments(smoothed, run.classes, rules)
    best = best_positions(smoothed, run.classes, found)
    return score_sweep(run.sweep, run.classes, run.probabilities, smoothed,
                       [(s.plane, s.start, s.end) for s in found], best)


def run_sweep(session: Any, sweep: Sweep, folder: Path, rules: SegmentRules | None = None,
              quality: bool | str = "auto") -> SweepRun:
    """Write the sweep as a clip in ``folder``, analyse it (every frame, no measurement) and score it."""
    clip = sweep.write(folder / f"{sweep.name}.avi")
    result = analyse_video(session, clip, max_frames=None, measure=False, quality=quality, rules=rules)
    clip.unlink()
    return SweepRun(sweep, list(result.classes), result.probabilities, score_analysis(sweep, result))


def summarise(scores: Sequence[SweepScore]) -> dict[str, Any]:
    """The numbers of the report over all sweeps, and whether each target is met."""
    def ratio(a: int, b: int) -> float | None:
        return None if b == 0 else round(a / b, 4)

    pairs = sum(s.true_segments for s in scores)
    claims = sum(len(s.planes_claimed_absent) for s in scores)
    out: dict[str, Any] = {
        "videos": len(scores),
        "video_plane_pairs": pairs,
        "segment_precision": ratio(sum(s.matched_segments for s in scores), sum(s.found_segments for s in scores)),
        "segment_recall": ratio(sum(s.matched_segments for s in scores), pairs),
        "best_frame_hit_rate": ratio(sum(s.best_frame_hits for s in scores), pairs),
        "absent_planes_claimed": claims,
        "absent_planes_claimed_per_10": None if not scores else round(10 * claims / len(scores), 3),
        "frames_in_segments": sum(s.frames_in_segments for s in scores),
        "frame_accuracy_in_segments": ratio(sum(s.frames_correct for s in scores),
                                            sum(s.frames_in_segments for s in scores)),
        "frame_accuracy_unsmoothed": ratio(sum(s.frames_correct_unsmoothed for s in scores),
                                           sum(s.frames_in_segments for s in scores)),
    }
    out["targets"] = {key: {"target": f"{op} {value}", "met": out[key] is not None and
                            (out[key] >= value if op == ">=" else out[key] <= value)}
                      for key, (op, value) in TARGETS.items()}
    return out


def _objective(summary: dict[str, Any]) -> tuple[float, ...]:
    met = sum(1 for t in summary["targets"].values() if t["met"])
    return (met, (summary["best_frame_hit_rate"] or 0.0) + (summary["segment_precision"] or 0.0)
            + (summary["segment_recall"] or 0.0) + (summary["frame_accuracy_in_segments"] or 0.0)
            - 0.05 * (summary["absent_planes_claimed_per_10"] or 0.0))


def tune_rules(runs: Sequence[SweepRun],
               grid: dict[str, Sequence[Any]] | None = None) -> tuple[SegmentRules, list[dict]]:
    """The rules of ``grid`` (odd windows, ``leave < enter``) that meet most targets on ``runs``, then have the
    highest sum of hit rate, segment precision, recall and frame accuracy (less a little per absent plane
    claimed); returns them and every candidate's summary, best first."""
    grid = grid or GRID
    table = []
    for window, enter, leave, min_frames in itertools.product(grid["window"], grid["enter"], grid["leave"],
                                                              grid["min_frames"]):
        if leave >= enter:
            continue
        rules = SegmentRules(window=window, enter=enter, leave=leave, min_frames=min_frames)
        summary = summarise([rescore(run, rules) for run in runs])
        table.append((_objective(summary), rules, summary))
    table.sort(key=lambda row: row[0], reverse=True)
    return table[0][1], [{"rules": asdict(rules), **summary} for _, rules, summary in table]


ROWS = (("segment_precision", "segment precision"), ("segment_recall", "segment recall"),
        ("best_frame_hit_rate", "best frame inside the right segment, per (video, plane)"),
        ("absent_planes_claimed_per_10", "absent planes claimed per 10 videos"),
        ("frame_accuracy_in_segments", "per-frame accuracy inside segments (smoothed)"),
        ("frame_accuracy_unsmoothed", "per-frame accuracy inside segments (each frame alone)"))


def to_markdown(report: dict[str, Any]) -> str:
    """The report (as :func:`write_report` stores it) as Markdown: one column per evaluated configuration."""
    columns = report["results"]
    lines = [f"# {report['title']}", "", report["description"], "",
             "| measure | target | " + " | ".join(c["label"] for c in columns) + " |",
             "| --- | --- | " + " | ".join("---" for _ in columns) + " |"]
    for key, label in ROWS:
        target = TARGETS.get(key)
        cells = []
        for column in columns:
            value = column["summary"][key]
            met = column["summary"]["targets"].get(key, {}).get("met")
            cells.append("-" if value is None else f"{value}" + ("" if met is None else (" (met)" if met else
                                                                                         " (missed)")))
        lines.append(f"| {label} | {'' if target is None else f'{target[0]} {target[1]}'} | " + " | ".join(cells)
                     + " |")
    lines += ["", "| configuration | videos | (video, plane) pairs | frames in segments | rules |",
              "| --- | --- | --- | --- | --- |"]
    for column in columns:
        s, r = column["summary"], column["rules"]
        lines.append(f"| {column['label']} | {s['videos']} | {s['video_plane_pairs']} | {s['frames_in_segments']} | "
                     f"window {r['window']}, enter {r['enter']}, leave {r['leave']}, min {r['min_frames']} frames |")
    lines += ["", "## How the numbers were made", ""] + [f"- {line}" for line in report["method"]]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """``folder/sweeps.json`` and ``folder/sweeps.md``."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "sweeps.json", folder / "sweeps.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(to_markdown(report))
    return json_path, md_path
