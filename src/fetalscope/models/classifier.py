"""The one shape every registry classifier has: ``backbone`` then ``head``.

Two-phase training relies on it: phase 1 freezes ``backbone`` and trains ``head`` on cached
``backbone`` outputs; phase 2 unfreezes the last N of ``blocks()``.
"""

from __future__ import annotations

import torch
from torch import nn

from fetalscope.models.spec import ModelSpec


class FetalscopeClassifier(nn.Module):
    """``forward(x) = head(backbone(x))``; ``blocks()`` lists backbone stages from input to output."""

    def __init__(self, backbone: nn.Module, head: nn.Module, spec: ModelSpec, num_classes: int,
                 blocks: list[str] | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.spec = spec
        self.num_classes = num_classes
        self._block_names = list(blocks) if blocks else []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def extra_output_names(self) -> tuple[str, ...]:
        """Names of extra outputs (besides ``logits``) that :meth:`forward_with_extras` returns."""
        return ()

    def forward_with_extras(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(logits, {name: tensor})``; the ONNX twin exports the extras as named outputs."""
        return self(x), {}

    def blocks(self) -> list[nn.Module]:
        """Backbone stages in input-to-output order (for unfreezing the last N)."""
        if not self._block_names:
            return [self.backbone]
        return [self.get_submodule(name) for name in self._block_names]

    def freeze_backbone(self, trainable_last_blocks: int = 0) -> None:
        """Freeze the backbone, then unfreeze its last ``trainable_last_blocks`` blocks (-1: all)."""
        for p in self.backbone.parameters():
            p.requires_grad_(trainable_last_blocks < 0)
        if trainable_last_blocks > 0:
            for block in self.blocks()[-trainable_last_blocks:]:
                for p in block.parameters():
                    p.requires_grad_(True)
        for p in self.head.parameters():
            p.requires_grad_(True)
