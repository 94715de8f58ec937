"""The one segmentation trainer behind every ellipse measurement.

A dataset of :class:`~fetalscope.data.segsets.SegSample` (image + per-structure mask file or ellipse)
and a :class:`SegTrainConfig` (structures, input size, epochs, ...) go in; a trained
:class:`~fetalscope.models.segmentation.EllipseUNet` with its history comes out, ready for
:func:`fetalscope.biometry.segbundle.save_seg_bundle`. A new measurement costs a dataset adapter and a
config, not a second code path.

Training: images and targets are resized once to the input size (targets by area averaging, so a
boundary that falls between model pixels stays soft and sub-pixel information survives),
augmented on the fly (affine, flip, intensity), optimised with AdamW on BCE + soft Dice, and stopped
early on the Dice of a held-out ``early_stop`` split (the best epoch's weights are kept).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, Dataset

from fetalscope.biometry.ellipse import Ellipse
from fetalscope.config import shared_data_relative
from fetalscope.data.segsets import SegSample, load_mask_file
from fetalscope.data.transforms import PreprocessConfig, normalise, prepare_array
from fetalscope.errors import BadInputError, DataError
from fetalscope.imaging.loader import load_image
from fetalscope.models.segmentation import EllipseUNet, EllipseUNetEnsemble, segmentation_preprocess
from fetalscope.train.runtime_opts import resolve_device

DEFAULT_SCALE_RANGE = (0.9, 1.1)  # the augmentation's random zoom unless a config says otherwise


@dataclass
class SegTrainConfig:
    """What to train: ``structures`` (output channels, in order), ``input_size`` (H, W), the encoder
    and the optimisation schedule. ``target`` picks the reference when a sample has both an ellipse
    and a mask for a structure ("ellipse" or "mask")."""

    structures: tuple[str, ...]
    input_size: tuple[int, int] = (160, 240)
    encoder: str = "efficientnet_lite0"
    pretrained: bool = True
    epochs: int = 40
    batch_size: int = 8
    lr: float = 1e-3
    encoder_lr_mult: float = 0.5
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    patience: int = 8
    min_epochs: int = 5
    augment: bool = True
    target: str = "ellipse"
    seed: int = 0
    threads: int = 2
    max_minutes: float | None = None
    channels_last: bool = True
    decoder_channels: tuple[int, int, int, int] = (96, 64, 48, 32)
    init_from: str | None = None  # a segmentation bundle whose weights start the training (fine-tuning)
    keep: str = "best"  # "best": the epoch with the best early-stop Dice; "last": the final epoch (refits)
    device: str = "auto"  # "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:1", ...
    num_workers: int = 0  # DataLoader worker processes for augmentation (0: in the training process)
    boundary_weight: float = 0.0  # extra BCE weight near the target outlines (:func:`dice_bce_loss`)
    circumference_weight: float = 0.0  # weight of :func:`circumference_loss` added to the Dice + BCE loss
    scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE  # random zoom of the augmentation (:func:`augment_pair`)
    # k > 1: keep the uniform average of the weights and BatchNorm statistics at the end of the last k epochs
    # (stochastic weight averaging, :class:`torch.optim.swa_utils.AveragedModel`); needs keep="last"
    average_last: int = 0
    # p > 0: each training image's loss is weighted by (its pixel size / the training images' mean) ** p, so that
    # an outline pixel weighs what it costs in millimetres (p = 1); needs every training image's pixel size
    pixel_size_weight: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["structures"] = list(self.structures)
        d["input_size"] = list(self.input_size)
        d["decoder_channels"] = list(self.decoder_channels)
        d["scale_range"] = list(self.scale_range)
        return d

    def preprocess(self) -> PreprocessConfig:
        return segmentation_preprocess(self.encoder, self.input_size)


@dataclass
class SegTrainResult:
    """The trained model (best early-stop epoch), per-epoch history and timings (seconds)."""

    model: EllipseUNet
    config: SegTrainConfig
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = 0.0
    averaged_epochs: int = 0  # how many epochs' weights the kept model averages (0: none, the last epoch's)
    train_seconds: float = 0.0
    prepare_seconds: float = 0.0
    device: str = "cpu"  # what trained it, e.g. "cpu" or "cuda (NVIDIA H100 80GB HBM3)"
    n_train: int = 0
    n_early_stop: int = 0
    stopped_because: str = ""


# ---- data -----------------------------------------------------------------------------------------
def target_masks(sample: SegSample, structures: Sequence[str], shape: tuple[int, int],
                 prefer: str = "ellipse") -> np.ndarray:
    """``C x H x W`` boolean full-resolution targets of ``sample`` (one channel per structure)."""
    out = np.zeros((len(structures), shape[0], shape[1]), dtype=bool)
    for i, s in enumerate(structures):
        has_e, has_m = s in sample.ellipses, s in sample.masks
        if has_e and (prefer == "ellipse" or not has_m):
            out[i] = Ellipse.from_dict(sample.ellipses[s]).rasterise(shape)
        elif has_m:
            m = load_mask_file(sample.masks[s])
            if m.shape != tuple(shape):
                raise DataError(f"{sample.masks[s]}: mask is {m.shape[1]}x{m.shape[0]} but image "
                                f"{sample.path.name} is {shape[1]}x{shape[0]}")
            out[i] = m
        else:
            raise DataError(f"{sample.path}: no mask or ellipse for structure '{s}'")
    return out


def prepare_sample(sample: SegSample, structures: Sequence[str], pre: PreprocessConfig,
                   prefer: str = "ellipse") -> tuple[np.ndarray, np.ndarray]:
    """(``h x w x 3`` uint8 model-size image, ``C x h x w`` float32 soft targets in [0, 1])."""
    image = load_image(sample.path)
    rgb = prepare_array(image, pre)
    masks = target_masks(sample, structures, (image.height, image.width), prefer)
    h, w = pre.input_size
    soft = np.stack([cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) for m in masks])
    return rgb, soft


def augment_pair(rgb: np.ndarray, targets: np.ndarray, rng: np.random.Generator,
                 scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE) -> tuple[np.ndarray, np.ndarray]:
    """Random affine (rotation +-15 deg, scale drawn from ``scale_range``, shift +-6%), horizontal flip, and
    intensity changes (contrast, brightness, gamma, noise, blur). Geometry is applied to image and targets alike."""
    h, w = rgb.shape[:2]
    angle = rng.uniform(-15, 15)
    scale = rng.uniform(*scale_range)
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, scale)
    m[0, 2] += rng.uniform(-0.06, 0.06) * w
    m[1, 2] += rng.uniform(-0.06, 0.06) * h
    if rng.random() < 0.5:
        flip = np.array([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        m = (np.vstack([m, [0, 0, 1]]) @ flip)[:2]
    img = cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    tgt = np.stack([cv2.warpAffine(t, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                   borderValue=0) for t in targets])
    x = img.astype(np.float32) / 255.0
    x = (x - 0.5) * rng.uniform(0.75, 1.3) + 0.5 + rng.uniform(-0.1, 0.1)
    x = np.clip(x, 0.0, 1.0) ** rng.uniform(0.75, 1.35)
    if rng.random() < 0.3:
        x = cv2.GaussianBlur(x, (0, 0), sigmaX=rng.uniform(0.3, 1.0))
    if rng.random() < 0.3:
        x = x + rng.normal(0.0, rng.uniform(0.01, 0.04), size=x.shape[:2])[..., None].astype(np.float32)
    img = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    return img, np.clip(tgt, 0.0, 1.0)


class SegArrayDataset(Dataset):
    """Pre-resized (image, targets) pairs -> (normalised ``3 x h x w`` tensor, ``C x h x w`` targets), and each
    pair's loss weight as a third item when ``weights`` are given."""

    def __init__(self, arrays: list[tuple[np.ndarray, np.ndarray]], pre: PreprocessConfig,
                 augment: bool = False, seed: int = 0,
                 scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE,
                 weights: Sequence[float] | None = None) -> None:
        if weights is not None and len(weights) != len(arrays):
            raise ValueError(f"{len(weights)} weights for {len(arrays)} images")
        self.weights = None if weights is None else torch.tensor(weights, dtype=torch.float32)
        self.arrays = arrays
        self.pre = pre
        self.augment = augment
        self.scale_range = scale_range
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        rgb, tgt = self.arrays[index]
        if self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            rgb, tgt = augment_pair(rgb, tgt, rng, self.scale_range)
        pair = (normalise(rgb, self.pre), torch.from_numpy(np.ascontiguousarray(tgt, dtype=np.float32)))
        return pair if self.weights is None else (*pair, self.weights[index])


def pixel_size_weights(samples: Sequence[SegSample], power: float) -> list[float]:
    """Each sample's loss weight, (pixel size / the samples' mean pixel size) ** ``power`` (mean near 1). One
    outline pixel of error costs ``pixel_size_mm`` millimetres, so ``power`` 1 weighs images by what an error
    costs in mm. A sample without a positive pixel size is refused."""
    missing = [s.path.name for s in samples if not float(s.meta.get("pixel_size_mm") or 0) > 0]
    if missing:
        raise DataError(f"pixel_size_weight needs every training image's pixel size; {len(missing)} have none "
                        f"(e.g. {missing[0]})")
    px = np.array([float(s.meta["pixel_size_mm"]) for s in samples])
    return [float(w) for w in (px / px.mean()) ** power]


# ---- loss and metrics -----------------------------------------------------------------------------
def boundary_band(targets: torch.Tensor, width: int = 2) -> torch.Tensor:
    """1 where a pixel lies within ``width`` pixels of a target's outline (the morphological gradient of
    ``targets >= 0.5`` with a ``2 * width + 1`` square), else 0; ``N x C x H x W`` like ``targets``."""
    inside = (targets >= 0.5).float()
    k = 2 * width + 1
    dilated = F.max_pool2d(inside, k, stride=1, padding=width)
    eroded = -F.max_pool2d(-inside, k, stride=1, padding=width)
    return dilated - eroded


def dice_bce_loss(logits: torch.Tensor, targets: torch.Tensor, eps: float = 1.0,
                  boundary_weight: float = 0.0, sample_weight: torch.Tensor | None = None) -> torch.Tensor:
    """BCE (with logits) plus (1 - soft Dice), Dice per image and channel, averaged. ``boundary_weight``
    > 0 weighs the BCE of pixels near each target's outline (:func:`boundary_band`) by ``1 + boundary_weight``:
    the ellipse is measured on its outline, which the bulk of the region barely constrains. ``sample_weight``
    (``N``) multiplies each image's BCE + Dice loss before the mean over images."""
    if sample_weight is not None:
        weight = 1.0 + boundary_weight * boundary_band(targets) if boundary_weight > 0 else torch.ones_like(targets)
        bce = (F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * weight).mean(dim=(1, 2, 3))
        bce = bce / weight.mean()
        p = torch.sigmoid(logits)
        dice = (2 * (p * targets).sum(dim=(2, 3)) + eps) / (p.sum(dim=(2, 3)) + targets.sum(dim=(2, 3)) + eps)
        return (sample_weight * (bce + (1 - dice).mean(dim=1))).mean()
    if boundary_weight > 0:
        weight = 1.0 + boundary_weight * boundary_band(targets)
        bce = F.binary_cross_entropy_with_logits(logits, targets, weight=weight) / weight.mean()
    else:
        bce = F.binary_cross_entropy_with_logits(logits, targets)
    p = torch.sigmoid(logits)
    inter = (p * targets).sum(dim=(2, 3))
    denom = p.sum(dim=(2, 3)) + targets.sum(dim=(2, 3))
    dice = (2 * inter + eps) / (denom + eps)
    return bce + (1 - dice).mean()


def moment_circumferences(maps: torch.Tensor, min_mass: float = 4.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The circumference (pixels) of the ellipse with the same first and second moments as each map of
    ``maps`` (``N x C x H x W``, values in [0, 1]): a filled ellipse with semi-axes a, b has variances
    a^2/4 and b^2/4 along its axes, and the circumference is Ramanujan's. Returns (``N x C``
    circumferences, ``N x C`` boolean: the map holds at least ``min_mass`` pixels). Differentiable."""
    h, w = maps.shape[-2:]
    ys = torch.arange(h, dtype=maps.dtype, device=maps.device).view(1, 1, h, 1)
    xs = torch.arange(w, dtype=maps.dtype, device=maps.device).view(1, 1, 1, w)
    mass = maps.sum(dim=(2, 3))
    valid = mass >= min_mass
    m0 = mass.clamp_min(min_mass)
    mx = (maps * xs).sum(dim=(2, 3)) / m0
    my = (maps * ys).sum(dim=(2, 3)) / m0
    dx = xs - mx[..., None, None]
    dy = ys - my[..., None, None]
    vxx = (maps * dx * dx).sum(dim=(2, 3)) / m0
    vyy = (maps * dy * dy).sum(dim=(2, 3)) / m0
    vxy = (maps * dx * dy).sum(dim=(2, 3)) / m0
    half_trace = (vxx + vyy) / 2
    spread = torch.sqrt(((vxx - vyy) / 2) ** 2 + vxy ** 2 + 1e-8)
    a = 2 * torch.sqrt((half_trace + spread).clamp_min(1e-6))
    b = 2 * torch.sqrt((half_trace - spread).clamp_min(1e-6))
    hh = ((a - b) / (a + b)) ** 2
    circumference = math.pi * (a + b) * (1 + 3 * hh / (10 + torch.sqrt(4 - 3 * hh)))
    return circumference, valid


def circumference_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean absolute relative difference between the moment-ellipse circumference
    (:func:`moment_circumferences`) of each predicted probability map and of its target, over the images
    and structures whose target is present; 0 when none is. Biometry is read from ellipse circumferences
    (HC, the CTR), which the per-pixel Dice and BCE weigh only through the few pixels near the outline."""
    pred, _ = moment_circumferences(torch.sigmoid(logits))
    ref, valid = moment_circumferences(targets)
    if not bool(valid.any()):
        return logits.new_zeros(())
    rel = (pred / ref.clamp_min(1e-3) - 1).abs()
    return rel[valid].clamp_max(1.0).mean()


@torch.no_grad()
def dice_scores(model: torch.nn.Module, loader: DataLoader, channels_last: bool = True,
                device: torch.device | str = "cpu") -> np.ndarray:
    """Per-image, per-channel hard Dice (prediction > 0.5 vs target > 0.5) at model resolution."""
    model.eval()
    scores = []
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        p = torch.sigmoid(model(x)) > 0.5
        t = y > 0.5
        inter = (p & t).sum(dim=(2, 3)).float()
        denom = (p.sum(dim=(2, 3)) + t.sum(dim=(2, 3))).float()
        scores.append(torch.where(denom > 0, 2 * inter / denom.clamp_min(1), torch.ones_like(denom)).cpu().numpy())
    return np.concatenate(scores) if scores else np.zeros((0, 0))


# ---- the trainer -----------------------------------------------------------------------------------
def _sample_key(sample: SegSample) -> dict[str, Any]:
    rel = shared_data_relative
    return {"image": rel(sample.path), "masks": {k: rel(v) for k, v in sorted(sample.masks.items())},
            "ellipses": {k: sample.ellipses[k] for k in sorted(sample.ellipses)}}


def prepared_cache_file(samples: Sequence[SegSample], cfg: SegTrainConfig, folder: str | Path) -> Path:
    """Where :func:`prepare_arrays` keeps the arrays of ``samples`` under ``cfg``: a file named by a hash
    of the image/mask names (relative to the shared data folder when inside it), the reference
    ellipses, the structures, the target choice and the preprocessing. Files are not re-read: delete the
    folder after editing images in place."""
    key = {"version": 1, "structures": list(cfg.structures), "target": cfg.target,
           "preprocess": cfg.preprocess().to_dict(), "samples": [_sample_key(s) for s in samples]}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return Path(folder) / f"segarrays-{digest}.npz"


def prepare_arrays(samples: Sequence[SegSample], cfg: SegTrainConfig,
                   cache: str | Path | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every sample resized to the model input: (``h x w x 3`` uint8 image, ``C x h x w`` float32 targets).

    With ``cache`` (a folder), the arrays are stored there once (lossless, greyscale images as one
    channel) and read back on later runs with the same samples and config, so a re-run or a run on
    another machine needs no image decoding (see :func:`prepared_cache_file`)."""
    pre = cfg.preprocess()
    file = prepared_cache_file(samples, cfg, cache) if cache is not None else None
    if file is not None and file.is_file():
        with np.load(file) as data:
            images, targets = data["images"], data["targets"]
        if len(images) == len(samples):
            if images.ndim == 3:
                images = np.repeat(images[..., None], 3, axis=3)
            return [(images[i], targets[i]) for i in range(len(samples))]
    arrays = [prepare_sample(s, cfg.structures, pre, cfg.target) for s in samples]
    if file is not None and arrays:
        images = np.stack([a[0] for a in arrays])
        grey = bool((images == images[..., :1]).all())
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, images=images[..., 0] if grey else images,
                            targets=np.stack([a[1] for a in arrays]).astype(np.float32))
        tmp.replace(file)
    return arrays


def train_segmenter(train: Sequence[SegSample], early_stop: Sequence[SegSample], cfg: SegTrainConfig,
                    log: Callable[[str], None] = print, cache: str | Path | None = None) -> SegTrainResult:
    """Train an :class:`EllipseUNet` on ``train``; keep the epoch with the best mean Dice on
    ``early_stop`` (stop after ``patience`` epochs without improvement, or at ``max_minutes``)."""
    if not train:
        raise DataError("no training images")
    if not early_stop:
        raise DataError("no early-stopping images: hold out a group-disjoint split for early stopping")
    if cfg.keep not in ("best", "last"):
        raise DataError(f"keep must be 'best' or 'last', got '{cfg.keep}'")
    if not cfg.boundary_weight >= 0:
        raise BadInputError(f"boundary_weight must be >= 0, got {cfg.boundary_weight}")
    if not cfg.circumference_weight >= 0:
        raise BadInputError(f"circumference_weight must be >= 0, got {cfg.circumference_weight}")
    if not 0 <= cfg.average_last <= cfg.epochs:
        raise BadInputError(f"average_last must be between 0 and epochs ({cfg.epochs}), got {cfg.average_last}")
    if not cfg.pixel_size_weight >= 0:
        raise BadInputError(f"pixel_size_weight must be >= 0, got {cfg.pixel_size_weight}")
    if cfg.average_last > 1 and cfg.keep != "last":
        raise BadInputError("average_last averages the last epochs' weights: it needs keep='last' (a refit or a "
                            "cross-validation fold), not the best early-stop epoch")
    low, high = cfg.scale_range
    if not 0 < low <= high:
        raise BadInputError(f"scale_range must be 0 < low <= high, got {tuple(cfg.scale_range)}")
    torch.manual_seed(cfg.seed)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, cfg.threads))
    cv2.setNumThreads(max(1, cfg.threads))
    try:
        return _train(train, early_stop, cfg, log, cache)
    finally:
        torch.set_num_threads(previous_threads)


def _load_average(model: torch.nn.Module, average: torch.nn.Module) -> None:
    """Load the averaged floating-point weights and statistics of ``average`` into ``model`` (integer buffers,
    BatchNorm's batch counters, stay the model's own: averaging counts means nothing)."""
    own = model.state_dict()
    model.load_state_dict({name: value if value.is_floating_point() else own[name]
                           for name, value in average.state_dict().items()})


def start_from_bundle(model: EllipseUNet, bundle: str | Path) -> str:
    """Load a segmentation bundle's weights into ``model`` before training; returns what was loaded, in words.

    The bundle's first network is taken (an ensemble's members were trained apart: their weights cannot be
    averaged). With the same structures every weight is loaded (fine-tuning); with other structures (e.g. the
    head model starting a heart and thorax model) every layer but the 1x1 output layer is, and the output layer
    keeps its fresh initialisation. Encoder and decoder must be the same."""
    from fetalscope.biometry.segbundle import load_seg_bundle

    start = load_seg_bundle(bundle)
    ensemble = isinstance(start.model, EllipseUNetEnsemble)
    source = start.model.members[0] if ensemble else start.model
    theirs, ours = source.arch_config(), model.arch_config()
    for key in ("encoder", "decoder_channels"):
        if theirs.get(key) != ours.get(key):
            raise DataError(f"cannot start from {bundle}: its {key} is {theirs.get(key)}, this model's {ours.get(key)}")
    which = "its first network" if ensemble else "its network"
    if list(source.structures) == list(model.structures):
        model.load_state_dict(source.state_dict())
        return f"initialised from {bundle} ({which})"
    weights = {name: value for name, value in source.state_dict().items() if not name.startswith("head.")}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or any(not name.startswith("head.") for name in missing):
        raise DataError(f"cannot start from {bundle}: layers differ ({missing + unexpected})")
    return (f"initialised from {bundle} ({which}, which segments {', '.join(source.structures)}): encoder and "
            f"decoder; the output layer for {', '.join(model.structures)} starts fresh")


def _train(train: Sequence[SegSample], early_stop: Sequence[SegSample], cfg: SegTrainConfig,
           log: Callable[[str], None], cache: str | Path | None = None) -> SegTrainResult:
    # refused before the images are prepared when a training image has no pixel size
    weights = pixel_size_weights(train, cfg.pixel_size_weight) if cfg.pixel_size_weight > 0 else None
    pre = cfg.preprocess()
    device = resolve_device(cfg.device)
    t0 = time.perf_counter()
    train_arrays = prepare_arrays(train, cfg, cache)
    stop_arrays = prepare_arrays(early_stop, cfg, cache)
    prepare_seconds = time.perf_counter() - t0
    log(f"prepared {len(train_arrays)} train / {len(stop_arrays)} early-stop images in {prepare_seconds:.0f}s")

    model = EllipseUNet(cfg.structures, encoder=cfg.encoder, pretrained=cfg.pretrained and not cfg.init_from,
                        decoder_channels=cfg.decoder_channels)
    if cfg.init_from:
        log(start_from_bundle(model, cfg.init_from))
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    enc = list(model.encoder.parameters())
    enc_ids = {id(p) for p in enc}
    dec = [p for p in model.parameters() if id(p) not in enc_ids]
    opt = torch.optim.AdamW([{"params": enc, "lr": cfg.lr * cfg.encoder_lr_mult},
                             {"params": dec, "lr": cfg.lr}], weight_decay=cfg.weight_decay)
    base_lrs = [g["lr"] for g in opt.param_groups]
    train_ds = SegArrayDataset(train_arrays, pre, augment=cfg.augment, seed=cfg.seed,
                               scale_range=tuple(cfg.scale_range), weights=weights)
    gen = torch.Generator().manual_seed(cfg.seed)
    train_dl = DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True, drop_last=len(train_ds) > cfg.batch_size,
                          generator=gen, num_workers=cfg.num_workers, pin_memory=device.type == "cuda")
    stop_dl = DataLoader(SegArrayDataset(stop_arrays, pre), batch_size=cfg.batch_size, num_workers=cfg.num_workers)
    steps_per_epoch = max(1, len(train_dl))
    total_steps = steps_per_epoch * cfg.epochs
    warmup = max(1, int(cfg.warmup_epochs * steps_per_epoch))

    result = SegTrainResult(model=model, config=cfg, prepare_seconds=prepare_seconds,
                            n_train=len(train), n_early_stop=len(early_stop),
                            device=f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "cpu")
    log(f"training on {result.device}")
    best_state = copy.deepcopy(model.state_dict())
    averaged = AveragedModel(model, use_buffers=True) if cfg.average_last > 1 else None
    best, best_epoch, step = -1.0, 0, 0
    t_train = time.perf_counter()
    stopped = "completed all epochs"
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        train_ds.epoch = epoch
        losses = []
        t_epoch = time.perf_counter()
        for batch in train_dl:
            x, y = batch[0], batch[1]
            w = batch[2].to(device) if len(batch) > 2 else None
            lr_scale = (step + 1) / warmup if step < warmup else \
                0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))
            for g, base in zip(opt.param_groups, base_lrs, strict=True):
                g["lr"] = base * lr_scale
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            logits = model(x)
            loss = dice_bce_loss(logits, y, boundary_weight=cfg.boundary_weight, sample_weight=w)
            if cfg.circumference_weight > 0:
                loss = loss + cfg.circumference_weight * circumference_loss(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
        scores = dice_scores(model, stop_dl, cfg.channels_last, device)
        per_channel = scores.mean(axis=0)
        score = float(per_channel.mean())
        row = {"epoch": epoch, "loss": float(np.mean(losses)), "early_stop_dice": score,
               "seconds": time.perf_counter() - t_epoch,
               **{f"dice_{s}": float(v) for s, v in zip(cfg.structures, per_channel, strict=True)}}
        result.history.append(row)
        if averaged is not None and epoch > cfg.epochs - cfg.average_last:
            averaged.update_parameters(model)
        improved = score > best
        if improved:
            best, best_epoch = score, epoch
            best_state = copy.deepcopy(model.state_dict())
        log(f"epoch {epoch}/{cfg.epochs} loss {row['loss']:.4f} early-stop Dice {score:.4f} "
            f"({', '.join(f'{s} {v:.4f}' for s, v in zip(cfg.structures, per_channel, strict=True))}) "
            f"{row['seconds']:.0f}s{' *' if improved else ''}")
        elapsed_min = (time.perf_counter() - t_train) / 60
        if cfg.keep == "best" and epoch >= cfg.min_epochs and epoch - best_epoch >= cfg.patience:
            stopped = f"no early-stop Dice gain for {cfg.patience} epochs"
            break
        if cfg.max_minutes is not None and elapsed_min >= cfg.max_minutes:
            stopped = f"time budget of {cfg.max_minutes} min reached"
            break
    if cfg.keep == "last":
        best_epoch, best = len(result.history), result.history[-1]["early_stop_dice"]
        if averaged is not None and int(averaged.n_averaged) > 1:
            result.averaged_epochs = int(averaged.n_averaged)
            _load_average(model, averaged.module)
            best = float(dice_scores(model, stop_dl, cfg.channels_last, device).mean())
            log(f"kept the average of the last {result.averaged_epochs} epochs' weights (early-stop Dice {best:.4f})")
    else:
        model.load_state_dict(best_state)
    model = model.to("cpu").to(memory_format=torch.contiguous_format)
    result.model = model
    model.eval()
    result.best_epoch, result.best_score = best_epoch, best
    result.train_seconds = time.perf_counter() - t_train
    result.stopped_because = stopped
    log(f"best epoch {best_epoch} (early-stop Dice {best:.4f}); {stopped}; "
        f"training {result.train_seconds / 60:.1f} min")
    return result
