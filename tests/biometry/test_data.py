"""Dataset adapters and group splits: a group (subject, duplicate group) never straddles splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fetalscope.data.focus import load_ellipse_csv, load_mask_folders
from fetalscope.data.segsets import SegSample, assert_groups_disjoint, group_folds, group_split
from fetalscope.errors import DataError


def _samples(sizes: list[int]) -> list[SegSample]:
    out = []
    for g, n in enumerate(sizes):
        out += [SegSample(path=Path(f"g{g}_{i}.png"), group=f"g{g}") for i in range(n)]
    return out


@pytest.mark.parametrize("seed", range(5))
def test_group_split_keeps_groups_whole(seed):
    samples = _samples([1, 4, 2, 1, 3, 1, 1, 5, 2, 1] * 4)
    splits = group_split(samples, {"validation": 0.2, "early_stop": 0.1}, seed=seed)
    assert sum(len(v) for v in splits.values()) == len(samples)
    groups = [{s.group for s in v} for v in splits.values()]
    assert all(not (a & b) for i, a in enumerate(groups) for b in groups[i + 1:])
    assert 0.15 * len(samples) <= len(splits["validation"]) <= 0.3 * len(samples)
    assert splits == group_split(samples, {"validation": 0.2, "early_stop": 0.1}, seed=seed)


def test_assert_groups_disjoint_raises():
    a, b = _samples([2]), _samples([1])
    with pytest.raises(DataError):
        assert_groups_disjoint(a[:1], a[1:])
    assert_groups_disjoint(a, [SegSample(path=Path("x.png"), group="other")])
    with pytest.raises(DataError):
        group_split(b, {"validation": 0.6, "early_stop": 0.5})


@pytest.mark.parametrize("seed", range(3))
def test_group_folds_partition_whole_groups(seed):
    samples = _samples([1, 4, 2, 1, 3, 1, 1, 5, 2, 1] * 3)
    folds = group_folds(samples, 5, seed=seed)
    assert len(folds) == 5
    assert sorted(s.path.name for f in folds for s in f) == sorted(s.path.name for s in samples)
    groups = [{s.group for s in f} for f in folds]
    assert all(not (a & b) for i, a in enumerate(groups) for b in groups[i + 1:])
    assert max(len(f) for f in folds) - min(len(f) for f in folds) <= 5  # balanced by size (largest group 5)
    assert folds == group_folds(samples, 5, seed=seed)
    assert any(group_folds(samples, 5, seed=s) != folds for s in range(seed + 1, seed + 4))


def test_group_folds_refuse_too_few_groups():
    with pytest.raises(DataError, match="3 group"):
        group_folds(_samples([2, 2, 1]), 4)
    with pytest.raises(DataError, match="at least 2 folds"):
        group_folds(_samples([2, 2, 1]), 1)


@pytest.mark.shared
def test_focus_split_never_separates_a_duplicate_group(shared_data):
    from fetalscope.data.focus import load_focus

    samples = load_focus(shared_data / "focus_fetal_thorax")
    assert len(samples) == 247
    assert all(set(s.masks) == {"heart", "thorax"} and set(s.ellipses) == {"heart", "thorax"} for s in samples)
    multi = {s.group for s in samples if sum(t.group == s.group for t in samples) > 1}
    assert len(multi) >= 20  # the set really has near-duplicate groups
    for seed in range(3):
        splits = group_split(samples, {"validation": 0.2, "early_stop": 0.1}, seed=seed)
        assert_groups_disjoint(*splits.values())


@pytest.mark.shared
def test_hc18_subjects_and_identical_images(shared_data):
    from fetalscope.data.hc18 import load_hc18

    samples = load_hc18(shared_data / "hc18")
    names = {s.name for s in samples}
    assert ("392_HC.png" in names) != ("392_2HC.png" in names)  # byte-identical pair kept once
    by_name = {s.name: s for s in samples}
    assert by_name["001_HC.png"].group == by_name.get("001_2HC.png", by_name["001_HC.png"]).group
    twins = [s for s in samples if s.name.endswith("_2HC.png")]
    assert twins and all(by_name[t.name.replace("_2HC", "_HC")].group == t.group for t in twins
                         if t.name.replace("_2HC", "_HC") in by_name)
    assert all(0.01 < s.meta["pixel_size_mm"] < 1 and s.meta["hc_mm"] > 0 for s in samples)


def _png(path: Path, value: int = 0, size=(40, 30)) -> Path:
    Image.fromarray(np.full((size[1], size[0]), value, np.uint8)).save(path)
    return path


def test_user_mask_folders(tmp_path):
    for d in ("img", "heart", "thorax"):
        (tmp_path / d).mkdir()
    for stem in ("a", "b"):
        _png(tmp_path / "img" / f"{stem}.png", 100)
        _png(tmp_path / "heart" / f"{stem}_heart.png", 255)
        _png(tmp_path / "thorax" / f"{stem}.png", 255)
    samples = load_mask_folders(tmp_path / "img", tmp_path / "heart", tmp_path / "thorax")
    assert [s.name for s in samples] == ["a.png", "b.png"]
    assert samples[0].masks["heart"].name == "a_heart.png"
    _png(tmp_path / "img" / "c.png")
    with pytest.raises(DataError, match="c.png"):
        load_mask_folders(tmp_path / "img", tmp_path / "heart", tmp_path / "thorax")


def test_user_ellipse_csv(tmp_path):
    _png(tmp_path / "x.png")
    cols = [f"{s}_{k}" for s in ("heart", "thorax") for k in ("cx", "cy", "a", "b", "angle_deg")]
    (tmp_path / "set.csv").write_text("image,duplicate_group," + ",".join(cols) + "\n"
                                      "x.png,7,20,15,5,4,10,20,15,12,10,0\n")
    (s,) = load_ellipse_csv(tmp_path / "set.csv")
    assert s.ellipses["heart"] == {"cx": 20.0, "cy": 15.0, "a": 5.0, "b": 4.0, "angle_deg": 10.0}
    assert s.group.endswith("7")
    (tmp_path / "bad.csv").write_text("image,heart_cx\nx.png,1\n")
    with pytest.raises(DataError, match="heart"):
        load_ellipse_csv(tmp_path / "bad.csv")
    (tmp_path / "missing.csv").write_text("image," + ",".join(cols) + "\nnope.png" + ",1" * 10 + "\n")
    with pytest.raises(DataError, match="not found"):
        load_ellipse_csv(tmp_path / "missing.csv")
