"""Two-phase transfer learning (frozen backbone on cached features, then fine-tuning) and ablations."""

from fetalscope.train.config import TrainConfig

__all__ = ["TrainConfig"]
