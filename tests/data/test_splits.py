"""Patient-grouped splits on a phantom FETAL_PLANES_DB tree; the disjointness guard; list hashes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fetalscope.data.fetal_planes_db import load_fetal_planes_db
from fetalscope.data.samples import Sample
from fetalscope.data.splits import (
    Split,
    assert_patient_disjoint,
    carve_validation,
    image_list_hash,
    kfold_splits,
    official_split,
    patient_split,
)
from fetalscope.errors import DataError


@pytest.fixture(scope="module")
def planes(tmp_path_factory: pytest.TempPathFactory):
    from fetalscope.data.phantoms import write_phantom_dataset

    root = write_phantom_dataset(
        tmp_path_factory.mktemp("fpdb"), n_patients=30, images_per_patient=6, size=(40, 40), seed=2
    )
    return load_fetal_planes_db(root)


def patients(part: list[Sample]) -> set[str]:
    return {s.patient for s in part}


def test_official_split_follows_train_column(planes) -> None:
    split = official_split(planes, val_fraction=0.2, seed=0)
    assert isinstance(split, Split)
    assert all(not s.meta["official_train"] for s in split.test)
    assert all(s.meta["official_train"] for s in split.train + split.val)
    assert sum(split.sizes().values()) == len(planes)
    assert len(patients(split.test)) == 8  # round(30 * 0.25)
    assert patients(split.train).isdisjoint(patients(split.val))
    assert 3 <= len(patients(split.val)) <= 6  # ~20 % of 22 training patients
    assert {s.label for s in split.val} == set(range(6))  # stratified: every class in val
    no_val = official_split(planes, val_fraction=0)
    assert no_val.val == [] and len(no_val.train) == len(split.train) + len(split.val)


def test_official_split_needs_the_flag(planes) -> None:
    stripped = [Sample(s.path, s.label, s.patient, {}) for s in planes]
    with pytest.raises(DataError, match="official train/test flag"):
        official_split(stripped)


def test_split_is_reproducible(planes) -> None:
    a = official_split(planes, seed=5)
    b = official_split(planes, seed=5)
    c = official_split(planes, seed=6)
    assert a.hashes() == b.hashes()
    assert a.hashes()["val"] != c.hashes()["val"]


def test_patient_disjoint_assertion_fires_on_overlap(planes) -> None:
    split = official_split(planes, val_fraction=0.2)
    leaked = split.val[0]
    with pytest.raises(DataError, match=rf"patient {leaked.patient} in \['train', 'val'\]"):
        assert_patient_disjoint(split.train + [leaked], split.val, names=["train", "val"])
    extra = [split.test[0], split.train[0]]  # a fourth part sharing a test and a train patient
    t, r = split.test[0].patient, split.train[0].patient
    with pytest.raises(DataError, match=r"2 patient\(s\) appear in more than one split") as err:
        assert_patient_disjoint(split.train, split.val, split.test, extra)
    assert f"patient {t} in ['part 2', 'part 3']" in str(err.value)
    assert f"patient {r} in ['part 0', 'part 3']" in str(err.value)
    assert_patient_disjoint(split.train, split.val, split.test)  # the real split passes


def test_kfold_covers_every_sample_once(planes) -> None:
    folds = kfold_splits(planes, k=5, seed=0, val_fraction=0.2)
    assert len(folds) == 5
    seen: list[Path] = []
    for f in folds:
        assert_patient_disjoint(f.train, f.val, f.test)
        assert f.val and f.train and f.test
        seen.extend(s.path for s in f.test)
    assert sorted(seen) == sorted(s.path for s in planes)
    assert all(5 <= len(patients(f.test)) <= 7 for f in folds)


def test_kfold_and_carving_without_stratification() -> None:
    # one class only in 2 patients: stratifying over 3 folds is impossible, grouping still holds
    samples = [Sample(Path(f"p{p}_{i}.png"), 1 if p < 2 else 0, str(p)) for p in range(9) for i in range(3)]
    folds = kfold_splits(samples, k=3, seed=1)
    assert sorted(len(patients(f.test)) for f in folds) == [3, 3, 3]
    train, val = carve_validation(samples, 0.3, seed=0)
    assert patients(train).isdisjoint(patients(val)) and val
    with pytest.raises(DataError, match="k=20"):
        kfold_splits(samples, k=20)
    with pytest.raises(DataError, match="at least 2"):
        carve_validation(samples[:3], 0.2)


def test_patient_split(planes) -> None:
    split = patient_split(planes, val_fraction=0.15, test_fraction=0.2, seed=0)
    assert_patient_disjoint(split.train, split.val, split.test)
    assert sum(split.sizes().values()) == len(planes)
    assert 4 <= len(patients(split.test)) <= 8


def test_image_list_hash(tmp_path: Path, planes) -> None:
    samples = list(planes)
    h = image_list_hash(samples)
    assert len(h) == 64
    assert image_list_hash(list(reversed(samples))) == h  # order does not matter
    relabelled = [Sample(samples[0].path, (samples[0].label + 1) % 6, samples[0].patient), *samples[1:]]
    assert image_list_hash(relabelled) != h
    assert image_list_hash(samples[1:]) != h
    # the same tree elsewhere on disk hashes the same
    root = samples[0].path.parent.parent
    moved = tmp_path / "moved"
    shutil.copytree(root, moved)
    elsewhere = load_fetal_planes_db(moved)
    assert image_list_hash(elsewhere) == h
