"""FETAL_PLANES_DB adapter on a generated phantom tree, on broken CSVs and on the real metadata CSV."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fetalscope.data.fetal_planes_db import load_fetal_planes_db, read_fetal_planes_csv
from fetalscope.data.labels import BRAIN_PLANE_CLASSES, PLANE_CLASSES
from fetalscope.data.phantoms import write_phantom_dataset
from fetalscope.errors import DataError

HEADER = "Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train "


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_phantom_dataset(
        tmp_path_factory.mktemp("fpdb"), n_patients=12, images_per_patient=6, size=(48, 48), seed=1
    )


def write_csv(folder: Path, rows: list[str], header: str = HEADER) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "FETAL_PLANES_DB_data.csv"
    path.write_text(
        "".join(f"{line} \n" if not line.endswith(" ") else f"{line}\n" for line in [header, *rows])
    )
    return path


def test_planes_task_on_phantoms(tree: Path) -> None:
    ds = load_fetal_planes_db(tree)
    assert len(ds) == 72
    assert ds.classes == PLANE_CLASSES
    assert ds.class_counts() == {c: 12 for c in PLANE_CLASSES}
    assert len(ds.patients) == 12
    s = ds[0]
    assert s.path.is_file() and s.path.name.startswith("phantom_Patient00001")
    assert s.patient == "1"
    assert set(s.meta) >= {"operator", "machine", "plane", "brain_plane", "official_train"}
    assert PLANE_CLASSES[s.label] == s.meta["plane"]
    assert isinstance(s.meta["official_train"], bool)
    assert "FETAL_PLANES_DB" in ds.source


def test_brain_planes_task_excludes_other(tmp_path: Path, tree: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tree, copy)
    csv_path = copy / "FETAL_PLANES_DB_data.csv"
    lines = csv_path.read_text().splitlines()
    first_brain = next(i for i, line in enumerate(lines) if ";Fetal brain;" in line)
    parts = lines[first_brain].split(";")
    parts[3] = "Other"
    lines[first_brain] = ";".join(parts)
    csv_path.write_text("\n".join(lines) + "\n")
    ds = load_fetal_planes_db(copy, task="brain-planes")
    assert ds.classes == BRAIN_PLANE_CLASSES
    assert len(ds) == 11  # 12 brain rows, one now "Other"
    assert all(s.meta["plane"] == "Fetal brain" for s in ds)
    assert all(BRAIN_PLANE_CLASSES[s.label] == s.meta["brain_plane"] for s in ds)


def test_missing_csv(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="metadata CSV not found"):
        load_fetal_planes_db(tmp_path)


def test_missing_columns_are_listed(tmp_path: Path) -> None:
    write_csv(tmp_path, ["a;1;Other"], header="Image_name;Patient_num;Plane")
    with pytest.raises(
        DataError, match=r"missing column\(s\) \['Brain_plane', 'Operator', 'US_Machine', 'Train'\]"
    ):
        load_fetal_planes_db(tmp_path, require_images=False)


def test_comma_separated_csv_is_reported(tmp_path: Path) -> None:
    (tmp_path / "FETAL_PLANES_DB_data.csv").write_text(HEADER.replace(";", ",") + "\n")
    with pytest.raises(DataError, match="';'-separated"):
        load_fetal_planes_db(tmp_path, require_images=False)


def test_unknown_labels_are_listed(tmp_path: Path) -> None:
    write_csv(
        tmp_path,
        [
            "a;1;Fetal brian;Trans-thalamic;Op. 1;Aloka;1",
            "b;1;Fetal heart;Not A Brain;Op. 1;Aloka;1",
            "c;2;Other;Not A Brain;Op. 1;Aloka;0",
        ],
    )
    with pytest.raises(DataError, match=r"unknown Plane label\(s\).*Fetal brian.*Fetal heart"):
        load_fetal_planes_db(tmp_path, require_images=False)


def test_unknown_brain_plane(tmp_path: Path) -> None:
    write_csv(tmp_path, ["a;1;Fetal brain;Trans-thalamus;Op. 1;Aloka;1"])
    with pytest.raises(DataError, match="Trans-thalamus"):
        load_fetal_planes_db(tmp_path, require_images=False)


def test_inconsistent_plane_and_brain_plane(tmp_path: Path) -> None:
    write_csv(
        tmp_path,
        [
            "a;1;Fetal femur;Trans-thalamic;Op. 1;Aloka;1",
            "b;1;Fetal brain;Not A Brain;Op. 1;Aloka;1",
        ],
    )
    with pytest.raises(
        DataError,
        match=r"2 row\(s\) whose Plane and Brain_plane disagree.*: a \(Fetal femur / Trans-thalamic\), b ",
    ):
        load_fetal_planes_db(tmp_path, require_images=False)


def test_bad_train_flag_and_duplicates(tmp_path: Path) -> None:
    write_csv(tmp_path / "t", ["a;1;Other;Not A Brain;Op. 1;Aloka;yes"])
    with pytest.raises(DataError, match="Train must be 0 or 1"):
        load_fetal_planes_db(tmp_path / "t", require_images=False)
    write_csv(tmp_path / "d", ["a;1;Other;Not A Brain;Op. 1;Aloka;1", "a;2;Other;Not A Brain;Op. 1;Aloka;0"])
    with pytest.raises(DataError, match="more than once: a"):
        load_fetal_planes_db(tmp_path / "d", require_images=False)


def test_empty_csv_and_empty_task(tmp_path: Path) -> None:
    write_csv(tmp_path / "e", [])
    with pytest.raises(DataError, match="no rows"):
        load_fetal_planes_db(tmp_path / "e", require_images=False)
    write_csv(tmp_path / "n", ["a;1;Other;Not A Brain;Op. 1;Aloka;1"])
    with pytest.raises(DataError, match="no rows left for task 'brain-planes'"):
        load_fetal_planes_db(tmp_path / "n", task="brain-planes", require_images=False)
    with pytest.raises(DataError, match="unknown task"):
        load_fetal_planes_db(tmp_path / "n", task="heads")


def test_missing_images_counted_with_examples(tmp_path: Path, tree: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tree, copy)
    gone = sorted((copy / "Images").glob("*.png"))[:3]
    for f in gone:
        f.unlink()
    with pytest.raises(DataError, match=r"3 of 72 image file\(s\).*missing, e\.g\. " + gone[0].name):
        load_fetal_planes_db(copy)
    assert len(load_fetal_planes_db(copy, require_images=False)) == 72
    shutil.rmtree(copy / "Images")
    with pytest.raises(DataError, match="image folder not found"):
        load_fetal_planes_db(copy)


def test_real_csv_counts(shared_data: Path) -> None:
    csv_path = shared_data / "fetal_planes_db" / "FETAL_PLANES_DB_data.csv"
    if not csv_path.is_file():
        pytest.skip("FETAL_PLANES_DB CSV not in shared data")
    rows = read_fetal_planes_csv(csv_path)
    assert len(rows) == 12400 and "Train" in rows[0]
    ds = load_fetal_planes_db(csv_path=csv_path, require_images=False)
    assert len(ds) == 12400
    assert ds.class_counts() == {
        "Fetal abdomen": 711,
        "Fetal brain": 3092,
        "Fetal femur": 1040,
        "Fetal thorax": 1718,
        "Maternal cervix": 1626,
        "Other": 4213,
    }
    assert len(ds.patients) == 1792
    train = [s for s in ds if s.meta["official_train"]]
    assert len(train) == 7129
    assert len({s.patient for s in train}) == 896
    brain = load_fetal_planes_db(csv_path=csv_path, task="brain-planes", require_images=False)
    assert brain.class_counts() == {"Trans-thalamic": 1638, "Trans-cerebellum": 714, "Trans-ventricular": 597}
    assert len(brain.patients) == 1060
