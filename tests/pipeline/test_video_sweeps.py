"""Scoring the video pipeline on sweeps with known segments: the counts on hand-made probabilities, a sweep of the
bundled example stills through the real pipeline, rules tuned from stored probabilities, the Markdown report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fetalscope.data.sweeps import Still, SweepSpec, build_sweep
from fetalscope.imaging.loader import load_image
from fetalscope.pipeline.session import Session
from fetalscope.pipeline.video_segments import SegmentRules
from fetalscope.pipeline.video_sweeps import (
    SweepRun,
    rescore,
    run_sweep,
    score_sweep,
    summarise,
    to_markdown,
    tune_rules,
    write_report,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "fetalscope" / "serve" / "examples"
CLASSES = ["Fetal brain", "Fetal thorax", "Other"]


def _sweep(planes: list[str], seed: int = 0):
    stills = [Still(np.full((40, 40, 3), 100 + 40 * i, np.uint8), p, f"s{i}") for i, p in enumerate(planes)]
    return build_sweep(stills, np.random.default_rng(seed), SweepSpec(size=(48, 40), frames_per_still=10,
                                                                       frames_jitter=0, transition_frames=2))


def test_counts_on_hand_made_probabilities() -> None:
    sweep = _sweep(["Fetal brain", "Fetal thorax"])  # brain 0..9, transition 10..11, thorax 12..21
    probs = np.zeros((22, 3))
    probs[:10, 0] = 1
    probs[10:, 1] = 1
    probs[3, :] = [0, 0, 1]  # one brain frame called Other
    score = score_sweep(sweep, CLASSES, probs, probs,
                        found=[("Fetal brain", 0, 9), ("Fetal thorax", 19, 21), ("Fetal abdomen", 5, 6)],
                        best={"Fetal brain": 4, "Fetal thorax": 11, "Fetal abdomen": 5})
    assert (score.true_segments, score.found_segments, score.matched_segments) == (2, 3, 1)  # thorax IoU 0.3
    assert score.best_frame_hits == 1  # thorax best frame 11 is in the transition, outside the thorax segment
    assert score.planes_claimed_absent == ["Fetal abdomen"]
    assert (score.frames_in_segments, score.frames_correct) == (20, 19)
    summary = summarise([score, score])
    assert summary["segment_precision"] == pytest.approx(1 / 3, abs=1e-4) and summary["segment_recall"] == 0.5
    assert summary["absent_planes_claimed_per_10"] == 10.0 and summary["frame_accuracy_in_segments"] == 0.95
    assert summary["targets"]["frame_accuracy_in_segments"]["met"] is True
    assert summary["targets"]["best_frame_hit_rate"]["met"] is False


def test_example_sweep_through_the_pipeline_tuning_and_report(tmp_path: Path) -> None:
    session = Session(brain_plane_model=None, brain_findings_model=None, detector=None)
    thorax = Still(load_image(EXAMPLES / "phantom_fetal_thorax.png").pixels, "Fetal thorax", "thorax")
    other = Still(load_image(EXAMPLES / "phantom_other.png").pixels, "Other", "other")
    sweep = build_sweep([other, thorax, other], np.random.default_rng(5), SweepSpec(frames_per_still=10),
                        name="phantoms")
    run = run_sweep(session, sweep, tmp_path, quality=False)
    assert not list(tmp_path.iterdir())  # the clip is removed
    assert run.probabilities.shape == (len(sweep.frames), len(session.classes))
    score = run.score
    # Other stills are background: the thorax is the one segment to find
    assert (score.true_segments, score.planes_claimed_absent, score.best_frame_hits) == (1, [], 1)
    assert score.planes_shown == ["Fetal thorax"] and score.frames_in_segments == sweep.truth.count("Fetal thorax")
    assert rescore(run, SegmentRules()) == score  # same rules, same answer from the stored probabilities
    rules, table = tune_rules([run], {"window": (1, 5), "enter": (0.6,), "leave": (0.4,), "min_frames": (3,)})
    assert rules.window in (1, 5) and len(table) == 2 and table[0]["rules"]["window"] == rules.window
    report = {"title": "T", "description": "D", "method": ["m"],
              "results": [{"label": "x", "rules": table[0]["rules"], "summary": summarise([score])}]}
    json_path, md_path = write_report(report, tmp_path / "out")
    text = md_path.read_text()
    assert json_path.is_file() and text == to_markdown(report)
    assert "| best frame inside the right segment, per (video, plane) | >= 0.9 | 1.0 (met) |" in text


def test_run_sweep_refuses_a_strided_result(tmp_path: Path) -> None:
    from fetalscope.pipeline.video_sweeps import score_analysis

    sweep = _sweep(["Fetal brain"])

    class Strided:
        frame_indices = [0, 2]

    with pytest.raises(ValueError, match="frame by frame"):
        score_analysis(sweep, Strided())  # type: ignore[arg-type]
    assert isinstance(SweepRun, type)
