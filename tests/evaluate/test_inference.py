"""collect_logits runs a real (tiny) model over a DataLoader and feeds evaluate_predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import softmax
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fetalscope.errors import BadInputError
from fetalscope.evaluate import collect_logits, evaluate_predictions


class TinyCNN(nn.Module):
    def __init__(self, n_classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(4, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.conv(x).relu().mean(dim=(2, 3))))


def loader(n: int = 37, batch_size: int = 8, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False)


def test_collect_logits_matches_direct_forward_in_eval_mode():
    torch.manual_seed(0)
    model = TinyCNN()
    model.train()
    dl = loader()
    logits, labels = collect_logits(model, dl)
    assert logits.shape == (37, 3) and logits.dtype == np.float32
    assert labels.dtype == np.int64
    x, y = dl.dataset.tensors
    np.testing.assert_array_equal(labels, y.numpy())
    model.eval()
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)  # dropout was off
    model.train()
    collect_logits(model, dl, progress=False)
    assert model.training  # mode restored


def test_collected_logits_feed_a_report():
    torch.manual_seed(1)
    model = TinyCNN()
    val_logits, val_labels = collect_logits(model, loader(seed=1))
    logits, labels = collect_logits(model, loader(seed=2))
    report = evaluate_predictions(labels, softmax(logits.astype(np.float64), axis=1), ["a", "b", "c"],
                                  val_logits=val_logits, val_labels=val_labels, test_logits=logits,
                                  n_boot=100)
    assert report["n_images"] == 37 and report["calibration"]["temperature"] is not None
    assert report["metrics"]["accuracy"] == (logits.argmax(axis=1) == labels).mean()


def test_collect_logits_rejects_batches_without_labels():
    dl = DataLoader(torch.randn(4, 1, 8, 8), batch_size=2)
    with pytest.raises(BadInputError, match="needs \\(inputs, labels\\) batches"):
        collect_logits(TinyCNN(), dl)
    with pytest.raises(BadInputError, match="yielded no batches"):
        collect_logits(TinyCNN(), [])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_collect_logits_on_cuda_matches_cpu():
    torch.manual_seed(3)
    model = TinyCNN()
    cpu, labels_cpu = collect_logits(model, loader())
    gpu, labels_gpu = collect_logits(model, loader(), device="cuda")
    np.testing.assert_allclose(gpu, cpu, rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(labels_gpu, labels_cpu)
