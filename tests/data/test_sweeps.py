"""Sweeps of stills with known segments: frame counts, truth per frame, merged same-plane runs, blurred
transitions, probe drift and speckle that change every frame, and plans that leave planes out."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fetalscope.data.sweeps import Still, SweepSpec, build_sweep, fit_to_screen, plan_sweeps
from fetalscope.imaging.video import open_frames


def _still(plane: str, name: str, value: int) -> Still:
    rgb = np.zeros((60, 80, 3), np.uint8)
    cv2.circle(rgb, (40, 30), 20, (value, value, value), -1)
    return Still(rgb, plane, name)


SPEC = SweepSpec(size=(96, 72), frames_per_still=6, frames_jitter=0, transition_frames=3)


def test_sweep_frames_truth_and_segments() -> None:
    stills = [_still("A", "a1", 200), _still("A", "a2", 150), _still("B", "b1", 100)]
    sweep = build_sweep(stills, np.random.default_rng(0), SPEC, name="s")
    assert len(sweep.frames) == 3 * 6 + 2 * 3 and all(f.shape == (72, 96, 3) for f in sweep.frames)
    # a1, transition inside A (labelled A), a2, transition A->B (no truth), b1
    assert sweep.truth == ["A"] * 15 + [None] * 3 + ["B"] * 6
    assert [(s.plane, s.start, s.end) for s in sweep.segments] == [("A", 0, 14), ("B", 18, 23)]
    assert sweep.planes == {"A", "B"} and sweep.stills == ["a1", "a2", "b1"]
    first, second = sweep.frames[0].astype(int), sweep.frames[1].astype(int)
    assert 0 < np.abs(first - second).mean() < 30  # drift and speckle change every frame, mildly
    screen = fit_to_screen(stills[0].pixels, SPEC.size).astype(int)
    assert np.abs(first - screen).mean() < 15  # still the still
    middle = sweep.frames[16]  # the middle of the A->B transition is blurred: less detail than a still frame
    assert cv2.Laplacian(middle, cv2.CV_64F).var() < cv2.Laplacian(sweep.frames[20], cv2.CV_64F).var()


def test_sweep_written_as_a_clip_reads_back(tmp_path: Path) -> None:
    sweep = build_sweep([_still("A", "a", 200), _still("B", "b", 90)], np.random.default_rng(1), SPEC)
    source = open_frames(sweep.write(tmp_path / "s.avi"))
    assert source.info.n_frames == len(sweep.frames) and source.info.fps == SPEC.fps


def test_plans_leave_planes_out_and_reuse_stills_last() -> None:
    stills = {"A": [_still("A", f"a{i}", 200) for i in range(40)], "B": [_still("B", f"b{i}", 90) for i in range(40)]}
    plans = plan_sweeps(stills, 40, np.random.default_rng(3))
    shown = [{s.plane for s in plan} for plan in plans]
    assert all(planes for planes in shown)
    assert 8 <= sum(len(p) == 1 for p in shown) <= 32  # about half leave one plane out
    a_names = [s.name for plan in plans for s in plan if s.plane == "A"]
    assert len(a_names) > 40 and len(set(a_names[:40])) == 40  # drawn without replacement while they last
    for plan in plans:  # each plane one run
        planes = [s.plane for s in plan]
        assert sum(1 for i, p in enumerate(planes) if i == 0 or planes[i - 1] != p) == len(set(planes))
