"""Synthetic probe sweeps made of real stills, with known segments: the evaluation clips of the video pipeline.

There is no open fetal ultrasound video with frame labels here, so a sweep is built from labelled stills the way
a sonographer's cine loop looks: each still is shown for about :attr:`SweepSpec.frames_per_still` frames on a
fixed screen, with probe-like drift (a smooth random walk in position, a little rotation and zoom), mild
spatially correlated multiplicative speckle that changes every frame, and JPEG compression; consecutive stills
are joined by :attr:`SweepSpec.transition_frames` blurred cross-fades (the probe moving between views). Every
frame carries its truth: the still's plane, or ``None`` in a transition. :func:`plan_sweeps` chooses which planes
each sweep shows (some sweeps leave planes out, to count planes claimed that are not there)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class SweepSpec:
    """How a sweep looks: screen ``size`` (width, height), ``fps``, frames per still (jittered by
    ``+- frames_jitter``), transition frames, drift (pixels per frame, random walk), rotation (degrees) and zoom
    amplitudes, speckle strength and correlation length (pixels), JPEG quality range."""

    size: tuple[int, int] = (320, 240)
    fps: float = 25.0
    frames_per_still: int = 12
    frames_jitter: int = 2
    transition_frames: int = 4
    drift_px: float = 1.5
    rotation_deg: float = 3.0
    zoom: float = 0.04
    speckle: float = 0.06
    speckle_sigma: float = 1.5
    jpeg_quality: tuple[int, int] = (65, 90)


@dataclass(frozen=True)
class Still:
    """A labelled still: its pixels (``H x W x 3`` uint8 RGB), plane and a name for the report."""

    pixels: np.ndarray = field(repr=False)
    plane: str
    name: str


@dataclass(frozen=True)
class TruthSegment:
    """The frames ``start`` .. ``end`` (inclusive) where ``plane`` is on screen (its stills and the transitions
    between two stills of that plane)."""

    plane: str
    start: int
    end: int


@dataclass
class Sweep:
    """A built sweep: its frames, each frame's truth plane (``None`` in transitions between planes), the truth
    segments and the stills shown."""

    name: str
    frames: list[np.ndarray] = field(repr=False)
    truth: list[str | None]
    segments: list[TruthSegment]
    stills: list[str]
    fps: float

    @property
    def planes(self) -> set[str]:
        return {s.plane for s in self.segments}

    def write(self, path: Path) -> Path:
        """The sweep as an MJPEG AVI (what the video pipeline reads)."""
        h, w = self.frames[0].shape[:2]
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), self.fps, (w, h))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write {path}")
        for rgb in self.frames:
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        writer.release()
        return path


def fit_to_screen(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``rgb`` scaled to fit a black screen of ``size`` (width, height), centred, aspect kept."""
    w, h = size
    scale = min(w / rgb.shape[1], h / rgb.shape[0])
    nw, nh = max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))
    screen = np.zeros((h, w, 3), np.uint8)
    y, x = (h - nh) // 2, (w - nw) // 2
    screen[y:y + nh, x:x + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    return screen


def _probe_frame(screen: np.ndarray, shift: np.ndarray, angle: float, zoom: float, spec: SweepSpec,
                 rng: np.random.Generator) -> np.ndarray:
    h, w = screen.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0 + zoom)
    matrix[:, 2] += shift
    moved = cv2.warpAffine(screen, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    noise = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), spec.speckle_sigma)
    noise *= spec.speckle / max(float(noise.std()), 1e-6)
    speckled = np.clip(moved.astype(np.float32) * (1.0 + noise)[..., None], 0, 255).astype(np.uint8)
    quality = int(rng.integers(spec.jpeg_quality[0], spec.jpeg_quality[1] + 1))
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(speckled, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _transition(a: np.ndarray, b: np.ndarray, n: int) -> list[np.ndarray]:
    """``n`` frames from ``a`` to ``b``: a cross-fade blurred most in the middle (the probe moving)."""
    out = []
    for i in range(1, n + 1):
        alpha = i / (n + 1)
        mixed = cv2.addWeighted(a, 1.0 - alpha, b, alpha, 0.0)
        sigma = 1.0 + 6.0 * (1.0 - abs(2.0 * alpha - 1.0))
        out.append(cv2.GaussianBlur(mixed, (0, 0), sigma))
    return out


def build_sweep(stills: Sequence[Still], rng: np.random.Generator, spec: SweepSpec | None = None,
                name: str = "sweep") -> Sweep:
    """One sweep showing ``stills`` in order (see the module docstring)."""
    spec = spec or SweepSpec()
    if not stills:
        raise ValueError("a sweep needs at least one still")
    frames: list[np.ndarray] = []
    truth: list[str | None] = []
    segments: list[TruthSegment] = []
    shift, angle, zoom = np.zeros(2), 0.0, 0.0
    for n, still in enumerate(stills):
        screen = fit_to_screen(still.pixels, spec.size)
        count = spec.frames_per_still + int(rng.integers(-spec.frames_jitter, spec.frames_jitter + 1))
        shown: list[np.ndarray] = []
        for _ in range(max(1, count)):
            shift = 0.9 * shift + rng.normal(0.0, spec.drift_px, 2)
            angle = float(np.clip(angle + rng.normal(0.0, spec.rotation_deg / 4),
                                  -spec.rotation_deg, spec.rotation_deg))
            zoom = float(np.clip(zoom + rng.normal(0.0, spec.zoom / 4), -spec.zoom, spec.zoom))
            shown.append(_probe_frame(screen, shift, angle, zoom, spec, rng))
        if n > 0:
            same = stills[n - 1].plane == still.plane
            for frame in _transition(frames[-1], shown[0], spec.transition_frames):
                frames.append(frame)
                truth.append(still.plane if same else None)
        start = len(frames)
        frames.extend(shown)
        truth.extend([still.plane] * len(shown))
        if segments and segments[-1].plane == still.plane:
            segments[-1] = TruthSegment(still.plane, segments[-1].start, len(frames) - 1)
        else:
            segments.append(TruthSegment(still.plane, start, len(frames) - 1))
    return Sweep(name, frames, truth, segments, [s.name for s in stills], spec.fps)


def plan_sweeps(stills_by_plane: dict[str, Sequence[Still]], n_sweeps: int, rng: np.random.Generator,
                max_stills_per_plane: int = 2, absent_share: float = 0.5) -> list[list[Still]]:
    """The stills of ``n_sweeps`` sweeps: each plane shown as one run of 1..``max_stills_per_plane`` stills, in
    random order; in about ``absent_share`` of the sweeps one of the planes is left out (never all). Stills are
    drawn without replacement while they last, so sweeps share as few images as possible."""
    planes = sorted(p for p, s in stills_by_plane.items() if len(s) > 0)
    if not planes:
        raise ValueError("no stills to build sweeps from")
    pools = {p: list(rng.permutation(len(stills_by_plane[p]))) for p in planes}

    def draw(plane: str) -> Still:
        if not pools[plane]:
            pools[plane] = list(rng.permutation(len(stills_by_plane[plane])))
        return stills_by_plane[plane][int(pools[plane].pop())]

    plans = []
    for _ in range(n_sweeps):
        shown = list(rng.permutation(planes))
        if len(shown) > 1 and rng.random() < absent_share:
            shown.pop(int(rng.integers(len(shown))))
        plan: list[Still] = []
        for plane in shown:
            plan.extend(draw(str(plane)) for _ in range(int(rng.integers(1, max_stills_per_plane + 1))))
        plans.append(plan)
    return plans
