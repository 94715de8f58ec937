"""Detector bundles: the same folder layout as classifier bundles (:mod:`fetalscope.models.bundle`):
``card.json`` + ``model.safetensors`` + ``card.md`` + ``report.json``, with ``"task": "detection"``.

The card carries what a consumer needs: ``classes`` (detector label order), ``detector`` (the
:class:`~fetalscope.detect.torchvision_backend.DetectorConfig`: input size, normalisation, anchors),
``score_threshold`` (the operating point), ``plausibility`` (the rules applied to served output),
base weights and licences, data, metrics and limitations.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import load_model, save_model

from fetalscope.detect import plausibility
from fetalscope.detect.skull import estimate_skull
from fetalscope.detect.torchvision_backend import ARCH, DetectorConfig, TorchvisionDetector, build_detector
from fetalscope.detect.types import Box
from fetalscope.errors import BadInputError, MissingWeightsError, UnsupportedError
from fetalscope.imaging.loader import UltrasoundImage
from fetalscope.models.bundle import (
    REPORT,
    WEIGHTS,
    BundleFolder,
    read_card_file,
    render_card_md,
    require_card_keys,
    resolve_bundle,
    software_versions,
    write_card_files,
)

TASK = "detection"
DEFAULT_BUNDLE = "brain-structures"


@dataclass
class DetectorBundle(BundleFolder):
    """A loaded detector bundle: the detector, its card and folder (``name`` and ``report`` come from
    :class:`~fetalscope.models.bundle.BundleFolder`)."""

    detector: TorchvisionDetector
    card: dict[str, Any]
    path: Path

    @property
    def classes(self) -> tuple[str, ...]:
        return self.detector.classes

    @property
    def score_threshold(self) -> float:
        return float(self.card.get("score_threshold", 0.5))

    def predict(self, image: UltrasoundImage) -> list[Box]:
        """Raw boxes (every box above the backend minimum score), as :class:`Detector` does."""
        return self.detector.predict(image)

    def detect(self, image: UltrasoundImage, score_threshold: float | None = None) -> dict[str, Any]:
        """The record ``fetalscope detect`` writes for one image (:func:`fetalscope.detect.api.detect_image`):

        - ``image``, ``width``, ``height``, ``model``, ``score_threshold``;
        - ``boxes``: plausible boxes at the operating threshold (or ``score_threshold``),
          ``[{label, score, xyxy}]`` in original pixels;
        - ``plausibility``: rule outcome of the *raw* boxes at the threshold (``plausible``,
          ``violations``, ``counts``, ``skull_found``, ``skull``) and ``removed``: boxes the filter dropped.
        """
        threshold = self.score_threshold if score_threshold is None else float(score_threshold)
        if not 0.0 <= threshold <= 1.0:
            raise BadInputError(f"score threshold must lie in [0, 1], got {threshold}")
        raw = [box for box in self.predict(image) if box.score >= threshold]
        skull = estimate_skull(image.pixels)
        rules = self.card.get("plausibility", {})
        kept = plausibility.enforce(raw, skull, drop_outside_skull=bool(rules.get("drop_outside_skull", False)))
        report = plausibility.check(raw, skull)
        removed = [box for box in raw if box not in kept]
        return {
            "image": image.source,
            "width": image.width,
            "height": image.height,
            "model": self.name,
            "score_threshold": threshold,
            "boxes": [box.to_dict() for box in kept],
            "plausibility": report.to_dict() | {"removed": [box.to_dict() for box in removed]},
        }


def render_detector_card_md(card: dict[str, Any]) -> str:
    """The shared model-card Markdown, plus the detection-specific input/threshold/plausibility section."""
    text = render_card_md({k: v for k, v in card.items() if k != "preprocess"})
    det = card.get("detector", {})
    extra = [
        "## Detection settings",
        "",
        f"- input: shorter image side resized to {det.get('min_size')} px (longer side at most "
        f"{det.get('max_size')} px), RGB scaled to [-1, 1] "
        f"(mean {det.get('image_mean')}, std {det.get('image_std')})",
        f"- operating score threshold: {card.get('score_threshold')} "
        "(chosen on a held-out split, see metrics)",
        "- boxes are returned in original-image pixel coordinates (x0, y0, x1, y1)",
        f"- plausibility rules: {card.get('plausibility', {}).get('rules', '(none)')}",
        "",
    ]
    marker = "## Known limitations"
    if marker in text:
        head, tail = text.split(marker, 1)
        return head + "\n".join(extra) + "\n" + marker + tail
    return text + "\n" + "\n".join(extra)


def save_detector_bundle(
    detector: TorchvisionDetector,
    folder: str | Path,
    card: dict[str, Any],
    report: dict[str, Any] | None = None,
) -> Path:
    """Write ``card.json``, ``model.safetensors``, ``card.md`` (and ``report.json``) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    full = dict(card)
    full.setdefault("name", folder.name)
    full.setdefault("version", "0.1.0")
    full["task"] = TASK
    full["architecture"] = ARCH
    full["classes"] = list(detector.classes)
    full["num_classes"] = len(detector.classes)
    full["detector"] = detector.cfg.to_dict()
    full["software"] = {**software_versions(), **card.get("software", {})}
    full.setdefault("created", _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    detector.model.eval()
    save_model(
        detector.model,
        str(folder / WEIGHTS),
        metadata={"architecture": ARCH, "task": TASK},
        force_contiguous=True,
    )
    (folder / WEIGHTS).chmod(0o644)  # safetensors writes owner-only files; bundles are read by everyone
    write_card_files(folder, full, render_detector_card_md(full))
    if report is not None:
        (folder / REPORT).write_text(
            json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    return folder


def load_detector(name_or_path: str | Path = DEFAULT_BUNDLE) -> DetectorBundle:
    """Load a detector bundle by bundled name (``brain-structures``) or folder path."""
    path = resolve_bundle(name_or_path)
    card = read_card_file(path)
    if card.get("task") != TASK:
        raise UnsupportedError(
            f"bundle {path} is a '{card.get('task', 'classification')}' model, not a detector; "
            f"pass a detection bundle such as '{DEFAULT_BUNDLE}'"
        )
    if card.get("architecture") != ARCH:
        raise UnsupportedError(
            f"bundle {path}: detector architecture '{card.get('architecture')}' is not supported"
        )
    require_card_keys(path, card, ("classes",))
    weights = path / WEIGHTS
    if not weights.is_file():
        raise MissingWeightsError(f"bundle {path} has no {WEIGHTS}; re-save it with save_detector_bundle()")
    cfg = DetectorConfig.from_dict(card.get("detector", {}))
    model = build_detector(len(card["classes"]), cfg, pretrained=False)
    try:
        missing, unexpected = load_model(model, str(weights), strict=False)
    except RuntimeError as exc:
        raise MissingWeightsError(f"{weights} does not match the card's detector settings: {exc}") from exc
    if missing or unexpected:
        raise MissingWeightsError(
            f"{weights} does not match the card's detector settings: missing {sorted(missing)[:3]}, "
            f"unexpected {sorted(unexpected)[:3]}"
        )
    return DetectorBundle(TorchvisionDetector(model.eval(), card["classes"], cfg), card, path)
