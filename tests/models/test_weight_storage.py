"""Weight storage kinds (fetalscope.models.weight_storage): float32, float16 and int8 with a scale per output
channel, and loading any of them back (fetalscope.models.bundle.load_bundle_weights)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from fetalscope.errors import MissingWeightsError
from fetalscope.models.bundle import load_bundle_weights, stored_as
from fetalscope.models.weight_storage import (
    SCALE_SUFFIX,
    dequantize_int8,
    int8_group,
    pack_state_dict,
    quantize_int8,
    unpack_state_dict,
)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 5), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 32, 3),
                         nn.Conv2d(32, 2, 1))


def test_int8_groups_divide_each_channel():
    assert [int8_group(n) for n in (9, 25, 64, 1152, 288, 97)] == [9, 25, 64, 64, 48, 1]


def test_int8_scales_follow_each_group_and_keep_the_squared_error_low():
    torch.manual_seed(0)
    w = torch.randn(8, 128) * torch.logspace(-3, 1, 8).reshape(-1, 1)  # channels of very different size
    w[3] = 0
    w[5, 70] = 40 * float(w[5].abs().max())  # one outlier in the second group of channel 5
    tiny = quantize_int8(torch.full((2, 64), 1e-9))  # below what a float16 scale can hold: zeros, not inf or NaN
    assert torch.all(tiny[1] == 1) and torch.all(tiny[0] == 0)
    q, scale = quantize_int8(w)
    assert q.dtype == torch.int8 and q.shape == w.shape and scale.shape == (8, 2) and scale.dtype == torch.float16
    assert int(q[3].abs().max()) == 0 and torch.all(scale[3] == 1)
    back = dequantize_int8(q, scale)
    groups, back_groups = w.reshape(8, 2, 64), back.reshape(8, 2, 64)
    err = (back_groups - groups).abs()
    peak = groups.abs().amax(dim=2)
    ok = torch.ones(8, 2, dtype=torch.bool)
    ok[5, 1] = False
    # away from the outlier each value is within half a step of a grid at most as coarse as peak / 127
    assert torch.all(err.amax(dim=2)[ok] <= (peak / 127 / 2 * 1.001)[ok])
    assert float(scale[5, 0]) < float(scale[5, 1]) / 20  # the outlier's group alone has a coarse grid
    # the chosen scale never does worse than the peak's, and clips where that pays
    step = torch.where(peak > 0, peak / 127, torch.ones_like(peak)).half().float()[..., None]
    naive = torch.clamp(torch.round(groups / step), -127, 127) * step
    assert torch.all(((back_groups - groups) ** 2).sum(dim=2) <= ((naive - groups) ** 2).sum(dim=2))


@pytest.mark.parametrize("storage", ["float32", "float16", "int8"])
def test_every_storage_loads_back_into_the_model(storage, tmp_path):
    net = _net().eval()
    state = net.state_dict()
    packed = pack_state_dict(state, storage)
    if storage == "int8":
        assert packed["3.weight"].dtype == torch.int8 and (("3.weight" + SCALE_SUFFIX) in packed)
        assert packed["0.weight"].dtype == torch.int8  # 16 x 3 x 5 x 5 = 1200 values
        assert packed["1.weight"].dtype == torch.float16  # BatchNorm: one value per channel
        assert packed["4.weight"].dtype == torch.float16  # 64 values: not worth a scale per channel
    assert packed["1.num_batches_tracked"].dtype == torch.int64
    path = tmp_path / "w.safetensors"
    save_file(packed, str(path), metadata={"storage": storage} if storage != "float32" else None)
    assert stored_as(path) == storage
    other = _net()
    for p in other.parameters():
        nn.init.zeros_(p)
    load_bundle_weights(other, path, "a test net")
    x = torch.randn(2, 3, 20, 20)
    with torch.no_grad():
        diff = (other.eval()(x) - net(x)).abs().max().item()
    assert diff == 0 if storage == "float32" else 0 < diff < 0.05


def test_int8_packing_quantises_large_matrices_only(tmp_path):
    state = {"big": torch.randn(64, 32), "vec": torch.randn(2048), "small": torch.randn(4, 4),
             "count": torch.tensor(3)}
    packed = pack_state_dict(state, "int8")
    assert packed["big"].dtype == torch.int8 and packed["vec"].dtype == torch.float16
    assert packed["small"].dtype == torch.float16 and packed["count"].dtype == torch.int64
    back = unpack_state_dict(packed)
    assert set(back) == set(state) and back["big"].dtype == torch.float32
    assert torch.allclose(back["big"], state["big"], atol=float(state["big"].abs().max()) / 127)
    only = pack_state_dict({"encoder.deep.weight": torch.randn(64, 32), "decoder.weight": torch.randn(64, 32)},
                           "int8", int8_layers=r"encoder\.deep")
    assert only["encoder.deep.weight"].dtype == torch.int8 and only["decoder.weight"].dtype == torch.float16


def test_broken_int8_files_and_unknown_storages_are_refused(tmp_path):
    packed = pack_state_dict({"w": torch.randn(64, 32)}, "int8")
    with pytest.raises(MissingWeightsError, match="has no .int8_scale scale"):
        unpack_state_dict({"w": packed["w"]}, "f.safetensors")
    with pytest.raises(MissingWeightsError, match="has no int8 tensor"):
        unpack_state_dict({"x" + SCALE_SUFFIX: packed["w" + SCALE_SUFFIX]})
    with pytest.raises(MissingWeightsError, match="expected \\(64, 1\\)"):
        unpack_state_dict({"w": packed["w"], "w" + SCALE_SUFFIX: torch.ones(3)})
    with pytest.raises(ValueError, match="choose one of float32, float16, int8"):
        pack_state_dict({"w": torch.randn(4, 4)}, "int4")
    with pytest.raises(ValueError, match="reserved suffix"):
        pack_state_dict({"w" + SCALE_SUFFIX: torch.randn(4)}, "float16")


def test_a_file_that_is_not_safetensors_gets_a_clear_error(tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(MissingWeightsError, match="not a readable safetensors file"):
        load_bundle_weights(_net(), bad, "a test net")
