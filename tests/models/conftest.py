"""Model tests run PyTorch single-threaded: on the shared 2-core machine, OpenMP with 2 threads under
load is up to 10x slower than one thread, and ONNX Runtime gets the same single thread."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread(monkeypatch):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # OnnxPredictor's default intra-op threads
    yield
    torch.set_num_threads(before)
