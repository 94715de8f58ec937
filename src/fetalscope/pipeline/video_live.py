"""Live scanning: frames arrive one at a time (a webcam, or a screen capture of a scanner's video output) and each
gets the current plane and a running standard-plane checklist with the best frame so far of each plane::

    live = LiveScan(Session(runtime="onnx-int8"))
    state = live.push(rgb)   # LiveState: plane, probability, latency_ms, checklist

The same rules as a saved clip, made causal: the probabilities are averaged over the last ``rules.window``
frames (nothing from the future is known), a plane is entered when that average reaches ``rules.enter`` and left
when it falls below ``rules.leave``; it counts as captured once it has held for ``rules.min_frames`` frames, and
its best frame is the frame of the highest average while it held. The sector is found once per stream
(:class:`~fetalscope.imaging.sector_tracker.SectorTracker`)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fetalscope.imaging.sector_tracker import SectorTracker
from fetalscope.pipeline.video import classify_frames
from fetalscope.pipeline.video_segments import SegmentRules

SKIPPED_PLANES = ("Other",)  # not a standard plane: never on the checklist


@dataclass
class PlaneCapture:
    """A plane's best frame so far: its number in the stream, the averaged probability and the pixels."""

    frame: int
    probability: float
    pixels: np.ndarray = field(repr=False)


@dataclass
class LiveState:
    """What the screen shows after a frame: the current plane (``None`` between planes), its averaged
    probability, the frame's latency (classification and bookkeeping, ms) and the checklist (plane ->
    ``PlaneCapture`` or ``None``)."""

    frame: int
    plane: str | None
    probability: float
    frame_plane: str
    frame_probability: float
    latency_ms: float
    checklist: dict[str, PlaneCapture | None]

    def to_dict(self) -> dict[str, Any]:
        return {"frame": self.frame, "plane": self.plane, "probability": round(self.probability, 6),
                "frame_plane": self.frame_plane, "frame_probability": round(self.frame_probability, 6),
                "latency_ms": round(self.latency_ms, 2),
                "checklist": {p: None if c is None else {"frame": c.frame, "probability": round(c.probability, 6)}
                              for p, c in self.checklist.items()}}


class LiveScan:
    """One live stream through ``session``'s plane model (see the module docstring)."""

    def __init__(self, session: Any, rules: SegmentRules | None = None) -> None:
        self.session = session
        self.rules = rules or SegmentRules()
        self.classes = list(session.classes)
        self.tracker = SectorTracker()
        self.reset()

    def reset(self) -> None:
        """Forget the stream: a new patient, a new checklist."""
        self.tracker.reset()
        self._recent: deque[np.ndarray] = deque(maxlen=max(1, self.rules.window))
        self._current: str | None = None
        self._held = 0
        self._candidate: PlaneCapture | None = None
        self.frames = 0
        self.latencies_ms: list[float] = []
        self.checklist: dict[str, PlaneCapture | None] = {c: None for c in self.classes if c not in SKIPPED_PLANES}

    def push(self, rgb: np.ndarray) -> LiveState:
        """Classify one ``H x W x 3`` uint8 RGB frame and update the current plane and the checklist."""
        t0 = time.perf_counter()
        probs = classify_frames(self.session, [rgb], self.tracker)[0]
        self._recent.append(probs)
        averaged = np.mean(self._recent, axis=0)
        index = self.frames
        self.frames += 1
        self._update_plane(averaged)
        if self._current is not None:
            p = float(averaged[self.classes.index(self._current)])
            self._held += 1
            if self._candidate is None or p > self._candidate.probability:
                self._candidate = PlaneCapture(index, p, rgb.copy())
            best = self.checklist.get(self._current)
            if self._held >= self.rules.min_frames and (best is None or self._candidate.probability > best.probability):
                self.checklist[self._current] = self._candidate
        top = int(np.argmax(probs))
        latency = (time.perf_counter() - t0) * 1000.0
        self.latencies_ms.append(latency)
        current_p = 0.0 if self._current is None else float(averaged[self.classes.index(self._current)])
        return LiveState(index, self._current, current_p, self.classes[top], float(probs[top]), latency,
                         dict(self.checklist))

    def _update_plane(self, averaged: np.ndarray) -> None:
        if self._current is not None and averaged[self.classes.index(self._current)] < self.rules.leave:
            self._current, self._held, self._candidate = None, 0, None
        if self._current is None:
            order = np.argsort(-averaged)
            for k in order:
                plane = self.classes[int(k)]
                if plane not in SKIPPED_PLANES and averaged[k] >= self.rules.enter:
                    self._current, self._held, self._candidate = plane, 0, None
                    break
