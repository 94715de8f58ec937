"""Phase 1 feature cache: backbone outputs computed once per (weights, preprocessing, image list)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from fetalscope.config import cache_dir
from fetalscope.models.classifier import FetalscopeClassifier
from fetalscope.train.classifier.progress import ProgressHook, report
from fetalscope.train.runtime_opts import autocast_context


def backbone_fingerprint(model: FetalscopeClassifier) -> str:
    """Hash of the backbone weights (so a cache never outlives the weights it came from)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.backbone.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def cache_key(model: FetalscopeClassifier, preprocess: dict, image_list_hash: str) -> str:
    payload = json.dumps(
        {"arch": getattr(model, "arch_name", type(model).__name__), "backbone": backbone_fingerprint(model),
         "preprocess": preprocess, "images": image_list_hash},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


@torch.inference_mode()
def extract_features(model: FetalscopeClassifier, loader: DataLoader, device: torch.device, amp: str = "off",
                     progress: ProgressHook | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    feats, labels = [], []
    for i, (x, y) in enumerate(loader, 1):
        x = x.to(device)
        if device.type == "cpu" and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_context(device, amp):
            f = model.forward_features(x)
        feats.append(f.float().cpu().to(torch.float16))
        labels.append(y.cpu())
        report(progress, "features", 0, 0, i, len(loader))
    return torch.cat(feats), torch.cat(labels)


def cached_features(model: FetalscopeClassifier, loader: DataLoader, device: torch.device, *, key: str,
                    amp: str = "off", progress: ProgressHook | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Load features for ``key`` from the cache folder, or compute and store them."""
    path = Path(cache_dir()) / "features" / f"{key}.pt"
    if path.is_file():
        blob = torch.load(path, map_location="cpu", weights_only=True)
        return blob["features"], blob["labels"]
    feats, labels = extract_features(model, loader, device, amp, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"features": feats, "labels": labels}, tmp)
    tmp.replace(path)
    return feats, labels
