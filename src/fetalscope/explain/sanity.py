"""Sanity check for saliency maps (Adebayo et al. 2018): cascading model-parameter randomisation.

A copy of the model has its layers re-initialised one stage at a time from the top (the head)
down to the input. After each stage every method explains the same images for the same target
classes again, and the Spearman rank correlation between the trained model's map and the
randomised model's map is recorded (on the maps as they are and on their absolute values). A
method whose maps stay similar once weights are random shows the image, not the model. It is
flagged as *insensitive to weights* when

- the rank correlation after the full cascade stays above ``threshold`` (default 0.5): the map
  survives the loss of every learned weight; or
- the rank correlation after randomising only the first stage (the classification head) stays
  above ``first_stage_threshold`` (default 0.9): the map ignores what the model learned about
  the classes (Adebayo et al.'s finding for Guided Backprop).

Stages: a registry classifier (``head`` + ``blocks()``) uses its head and then its backbone
blocks from output to input; any other model uses its top-level children that hold parameters.
Re-initialising calls each module's own ``reset_parameters()`` (PyTorch's default initialisers;
BatchNorm layers also reset their running statistics), seeded for reproducibility.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from fetalscope.data.transforms import PreprocessConfig
from fetalscope.errors import BadInputError
from fetalscope.explain.common import as_batch, normalise_targets, num_classes_of, resolve_targets
from fetalscope.explain.methods import canonical_name, explain_batch

DEFAULT_THRESHOLD = 0.5
DEFAULT_FIRST_STAGE_THRESHOLD = 0.9


def cascade_stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) stages to randomise, from the output towards the input."""
    named = dict(model.named_modules())
    head = getattr(model, "head", None)
    blocks_fn = getattr(model, "blocks", None)
    if isinstance(head, nn.Module) and callable(blocks_fn):
        blocks = list(blocks_fn())
        ids = {id(m): n for n, m in named.items()}
        stages = [("head", head)] + [(ids.get(id(b), f"block{i}"), b) for i, b in reversed(list(enumerate(blocks)))]
    else:
        stages = [(n, m) for n, m in model.named_children() if any(True for _ in m.parameters())]
        stages.reverse()
    stages = [(n, m) for n, m in stages if any(True for _ in m.parameters())]
    if not stages:
        raise BadInputError(f"model {type(model).__name__} has no parameters to randomise")
    return stages


def randomise_(module: nn.Module, seed: int) -> int:
    """Re-initialise every sub-module that can (``reset_parameters``); returns how many did."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    n = 0
    try:
        for m in module.modules():
            reset = getattr(m, "reset_parameters", None)
            if callable(reset) and any(True for _ in m.parameters(recurse=False)):
                reset()
                n += 1
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                m.reset_running_stats()
    finally:
        torch.random.set_rng_state(gen_state)
    return n


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rho of two maps; None when either map is constant (no ranking to compare)."""
    a = np.nan_to_num(np.asarray(a, dtype=np.float64).ravel())
    b = np.nan_to_num(np.asarray(b, dtype=np.float64).ravel())
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    rho = spearmanr(a, b).statistic
    return None if rho is None or not math.isfinite(float(rho)) else float(rho)


@dataclass
class SanityResult:
    """Rank correlations, per method, after each cascade stage (mean over images)."""

    stages: list[str]
    threshold: float
    first_stage_threshold: float = DEFAULT_FIRST_STAGE_THRESHOLD
    spearman: dict[str, list[float | None]] = field(default_factory=dict)
    spearman_abs: dict[str, list[float | None]] = field(default_factory=dict)
    per_image: dict[str, list[list[float | None]]] = field(default_factory=dict)
    constant_maps: dict[str, int] = field(default_factory=dict)

    def _at(self, method: str, stage: int) -> float | None:
        """Rank correlation after ``stage`` (max of raw and absolute-value maps: the more lenient)."""
        vals = [v[stage] for v in (self.spearman[method], self.spearman_abs[method]) if v and v[stage] is not None]
        return max(vals) if vals else None

    def final(self, method: str) -> float | None:
        """Rank correlation once every stage is random."""
        return self._at(method, -1)

    def first(self, method: str) -> float | None:
        """Rank correlation once only the first stage (the head) is random."""
        return self._at(method, 0)

    def reasons(self, method: str) -> list[str]:
        """Why ``method`` is flagged (empty when it is not)."""
        out = []
        first, final = self.first(method), self.final(method)
        if len(self.stages) > 1 and first is not None and first > self.first_stage_threshold:
            out.append(f"maps barely change when the {self.stages[0]} is randomised "
                       f"(rank correlation {first:.2f} > {self.first_stage_threshold:.2f})")
        if final is not None and final > self.threshold:
            out.append(f"maps survive randomisation of every layer (rank correlation {final:.2f} > "
                       f"{self.threshold:.2f})")
        return out

    def flagged(self) -> list[str]:
        """Methods insensitive to the model's weights (see the module docstring)."""
        return [m for m in self.spearman if self.reasons(m)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "stages": self.stages, "threshold": self.threshold, "first_stage_threshold": self.first_stage_threshold,
            "methods": {m: {"spearman": self.spearman[m], "spearman_abs": self.spearman_abs[m],
                            "first": self.first(m), "final": self.final(m), "flagged": bool(self.reasons(m)),
                            "reasons": self.reasons(m), "constant_maps": self.constant_maps.get(m, 0),
                            "per_image_final": [row[-1] if row else None for row in self.per_image[m]]}
                        for m in self.spearman},
            "flagged": self.flagged(),
        }


def _mean(vals: list[float | None]) -> float | None:
    """Mean rank correlation; a constant randomised map (None) counts as 0 - its ranking is gone."""
    if not vals:
        return None
    return float(np.mean([0.0 if v is None else v for v in vals]))


def cascading_randomisation(model: nn.Module, x: torch.Tensor, methods: Sequence[str], *,
                            target: int | Sequence[int] | None = None, preprocess: PreprocessConfig | None = None,
                            method_params: dict[str, dict[str, Any]] | None = None, seed: int = 0,
                            threshold: float = DEFAULT_THRESHOLD,
                            first_stage_threshold: float = DEFAULT_FIRST_STAGE_THRESHOLD, max_stages: int | None = None,
                            reference: dict[str, list[np.ndarray]] | None = None) -> SanityResult:
    """Run the cascade on images ``x`` (``N x C x H x W``) for each method.

    ``target`` defaults to the trained model's predictions, and the randomised models explain
    the same classes. ``max_stages`` caps the number of stages (the last one always randomises
    everything that is left). ``reference`` may pass the trained model's maps (per method, one
    per image) when they were already computed with the same parameters.
    """
    xb = as_batch(x)
    names = [canonical_name(m) for m in methods]
    params = {canonical_name(k): v for k, v in (method_params or {}).items()}
    t = normalise_targets(target, xb.shape[0], num_classes_of(model))
    was_training = model.training
    model.eval()
    try:
        if t is None:
            t, _ = resolve_targets(model, xb, None)
    finally:
        model.train(was_training)
    work = copy.deepcopy(model).eval()
    stages = cascade_stages(work)
    groups = _group(stages, max_stages)

    def maps_of(m: nn.Module) -> dict[str, list[np.ndarray]]:
        return {n: [e.map for e in explain_batch(m, xb, n, t, preprocess=preprocess, **params.get(n, {}))]
                for n in names}

    ref = reference if reference is not None else maps_of(model)
    res = SanityResult(stages=[" + ".join(n for n, _ in g) for g in groups], threshold=float(threshold),
                       first_stage_threshold=float(first_stage_threshold))
    for n in names:
        res.spearman[n], res.spearman_abs[n], res.per_image[n] = [], [], [[] for _ in range(xb.shape[0])]
        res.constant_maps[n] = 0
    for gi, group in enumerate(groups):
        for si, (_, module) in enumerate(group):
            randomise_(module, seed + 1000 * gi + si)
        current = maps_of(work)
        for n in names:
            raw, ab = [], []
            for i in range(xb.shape[0]):
                r = rank_correlation(ref[n][i], current[n][i])
                raw.append(r)
                ab.append(rank_correlation(np.abs(ref[n][i]), np.abs(current[n][i])))
                res.per_image[n][i].append(r)
                res.constant_maps[n] += int(r is None)
            res.spearman[n].append(_mean(raw))
            res.spearman_abs[n].append(_mean(ab))
    return res


def _group(stages: list[tuple[str, nn.Module]], max_stages: int | None) -> list[list[tuple[str, nn.Module]]]:
    if not max_stages or max_stages >= len(stages):
        return [[s] for s in stages]
    if max_stages < 1:
        raise BadInputError(f"max_stages must be >= 1, got {max_stages}")
    # keep the top stages single (most informative) and merge the rest into the last group
    groups = [[s] for s in stages[: max_stages - 1]]
    groups.append(list(stages[max_stages - 1:]))
    return groups
