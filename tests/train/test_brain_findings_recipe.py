"""The normal/abnormal study's data side on real files: the three layouts, the split, the masking of the
head box, and the guards that keep a user's files safe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fetalscope.errors import BadInputError, DataError
from fetalscope.train.recipes.brain_findings import checks
from fetalscope.train.recipes.brain_findings.data import (
    check_binary,
    load_binary_set,
    make_split,
    materialise,
    positive_class,
)


def _write_yolo_export(root: Path, per_class: int = 6) -> Path:
    """A Roboflow-style detection export: one whole-head box per image, its class the image's class."""
    from fetalscope.data.phantoms import make_phantom

    rng = np.random.default_rng(0)
    (root / "train" / "images").mkdir(parents=True)
    (root / "train" / "labels").mkdir(parents=True)
    for cls_index, cls in enumerate(("abnormal", "normal")):
        for i in range(per_class):
            stem = f"{cls}{i}_png.rf.{i:04d}"
            Image.fromarray(make_phantom("Fetal brain", rng, (80, 96))).save(root / "train" / "images" / f"{stem}.jpg")
            (root / "train" / "labels" / f"{stem}.txt").write_text(f"{cls_index} 0.5 0.5 0.5 0.4\n")
    (root / "data.yaml").write_text("train: train/images\nval: train/images\nnc: 2\nnames: ['abnormal', 'normal']\n")
    return root


def test_yolo_export_gives_boxed_binary_samples_and_masking_blanks_the_head(tmp_path):
    full = load_binary_set(_write_yolo_export(tmp_path / "yolo"))
    check_binary(full, "yolo")
    assert full.classes == ("abnormal", "normal") and len({s.path for s in full.samples}) == 12
    assert positive_class(full.classes, None) == 0  # the class not called normal
    sample = full.samples[0]
    assert checks.has_boxes(full.samples) and sample.meta["box_norm"] == pytest.approx([0.25, 0.3, 0.75, 0.7])
    from fetalscope.data.transforms import PreprocessConfig

    pre = PreprocessConfig(input_size=(48, 48), channels=3, crop_sector=False)
    plain, box = checks.model_inputs(sample, pre, "plain")
    no_head, _ = checks.model_inputs(sample, pre, "no_head")
    head_only, _ = checks.model_inputs(sample, pre, "head_only")
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    inner = (slice(None), slice(y0 + 2, y1 - 2), slice(x0 + 2, x1 - 2))
    assert box == pytest.approx((12.0, 14.4, 36.0, 33.6))
    def spread(t):  # largest per-channel standard deviation
        return float(t.flatten(1).std(dim=1).max())

    assert spread(no_head[inner]) == pytest.approx(0.0, abs=1e-6) and spread(plain[inner]) > 0.01
    assert spread(head_only[:, :, : x0 - 2]) == pytest.approx(0.0, abs=1e-6)
    assert np.allclose(head_only[inner].numpy(), plain[inner].numpy(), atol=1e-5)


def test_class_folders_split_and_the_materialised_tree(tmp_path):
    for cls in ("Normal", "VM"):
        (tmp_path / "set" / cls).mkdir(parents=True)
        for i in range(10):
            pixels = np.full((32, 32), 40 * (cls == "VM") + i, np.uint8)
            Image.fromarray(pixels).save(tmp_path / "set" / cls / f"{cls}{i}.png")
    full = load_binary_set(tmp_path / "set")
    assert positive_class(full.classes, None) == full.classes.index("VM")
    assert positive_class(full.classes, "normal") == full.classes.index("Normal")
    split = make_split(full, seed=0)
    parts = split.parts()
    assert sum(len(p) for p in parts.values()) == 20 and len(parts["train"]) > len(parts["test"]) > 0
    assert all({s.label for s in p} == {0, 1} for p in parts.values())  # stratified: both classes everywhere
    assert not {s.path for s in parts["train"]} & {s.path for s in parts["test"]}
    tree = materialise(split, full.classes, tmp_path / "out" / "data")
    links = [p for p in tree.rglob("*.png")]
    assert len(links) == 20 and all(p.is_symlink() and p.resolve().is_file() for p in links)
    materialise(split, full.classes, tree)  # its own symlink tree is replaced
    (tree / "note.txt").write_text("mine")
    with pytest.raises(BadInputError, match="holds real files"):
        materialise(split, full.classes, tree)
    assert (tree / "note.txt").read_text() == "mine"


def test_bad_sets_are_refused(tmp_path):
    for cls in ("a", "b", "c"):
        (tmp_path / cls).mkdir()
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / cls / "x.png")
    with pytest.raises(DataError, match="exactly 2 classes"):
        check_binary(load_binary_set(tmp_path), tmp_path)
    with pytest.raises(BadInputError, match="--positive"):
        positive_class(("a", "b"), None)
    with pytest.raises(DataError, match="not in"):
        positive_class(("normal", "vm"), "abnormal")
    with pytest.raises(DataError, match="no such dataset"):
        load_binary_set(tmp_path / "missing")
