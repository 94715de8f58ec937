"""The real images of the shared folder as one list (all_real_images) and as a FETAL_PLANES_DB-layout folder
(write_real_fpdb_subset)."""

from __future__ import annotations

from collections import Counter

import pytest
from PIL import Image

from fetalscope.data.fetal_planes_db import load_fetal_planes_db
from fetalscope.data.real_sets import all_real_images, write_real_fpdb_subset
from fetalscope.errors import DataError

HEADER = "Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train "
ROWS = [
    "Patient00001_Plane3_1_of_2;1;Fetal brain;Trans-ventricular;Op. 1;Voluson E6;1 ",
    "Patient00002_Plane3_1_of_1;2;Fetal brain;Trans-thalamic;Op. 2;Aloka;0 ",
    "Patient00003_Plane3_2_of_2;3;Fetal brain;Trans-cerebellum;Other;Voluson S10;1 ",
    "Patient00004_Plane2_1_of_1;4;Fetal abdomen;Not A Brain;Other;Aloka;1 ",  # no image offline
]


def _png(path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8), value).save(path, format="PNG" if path.suffix == ".png" else "JPEG")


@pytest.fixture()
def mini_shared(tmp_path):
    """A shared data folder in miniature: the official CSV, one Alzubaidi PNG and Roboflow JPG copies."""
    data = tmp_path / "data"
    (data / "fetal_planes_db").mkdir(parents=True)
    (data / "fetal_planes_db" / "FETAL_PLANES_DB_data.csv").write_text("\n".join([HEADER, *ROWS]) + "\n")
    _png(data / "fetal_planes_db_tv_alzubaidi" / "images" / "Patient00001_Plane3_1_of_2.png", 10)
    rf = data / "brain_normal_abnormal_roboflow"
    _png(rf / "train" / "images" / "Patient00002_Plane3_1_of_1_png.rf.aaa.jpg", 20)
    _png(rf / "valid" / "images" / "Patient00002_Plane3_1_of_1_png.rf.bbb.jpg", 30)  # preferred over train
    _png(rf / "train" / "images" / "Patient00003_Plane3_2_of_2_png.rf.ccc.jpg", 40)
    _png(rf / "train" / "images" / "Patient00001_Plane3_1_of_2_png.rf.ddd.jpg", 50)  # the PNG wins
    _png(rf / "test" / "images" / "Patient09999_Plane3_1_of_1_png.rf.eee.jpg", 60)  # not in the CSV
    return data


def test_write_real_fpdb_subset_links_the_offline_images(mini_shared, tmp_path):
    out = tmp_path / "subset"
    counts = write_real_fpdb_subset(mini_shared, out)
    assert counts == {"Trans-ventricular": 1, "Trans-thalamic": 1, "Trans-cerebellum": 1}
    csv_lines = (out / "FETAL_PLANES_DB_data.csv").read_text().splitlines()
    assert csv_lines == [HEADER, *ROWS[:3]]  # the official rows, untouched (trailing spaces kept)
    links = {p.name: p.resolve() for p in (out / "Images").iterdir()}
    assert all((out / "Images" / name).is_symlink() for name in links)
    assert links["Patient00001_Plane3_1_of_2.png"].parent.parent.name == "fetal_planes_db_tv_alzubaidi"
    assert links["Patient00002_Plane3_1_of_1.png"].parent.parent.name == "valid"
    labelled = load_fetal_planes_db(out, task="brain-planes")  # the adapter a full download uses reads it
    assert len(labelled.samples) == 3
    assert write_real_fpdb_subset(mini_shared, out) == counts  # re-running replaces the links


def test_write_real_fpdb_subset_needs_the_csv(tmp_path):
    with pytest.raises(DataError, match="FETAL_PLANES_DB_data.csv not found"):
        write_real_fpdb_subset(tmp_path, tmp_path / "out")


@pytest.mark.shared
def test_all_real_images_of_the_shared_folder(shared_data):
    images = all_real_images(shared_data)
    by_source = Counter(im.source for im in images)
    assert set(by_source) == {"HC18", "FPDB-TV", "FPDB-brain-rf", "FOCUS", "web-abnormal-rf"}
    assert by_source["FPDB-TV"] == 57 and by_source["FOCUS"] == 247
    assert len({im.path for im in images}) == len(images)  # one entry per image
    tv_names = {im.path.stem for im in images if im.source == "FPDB-TV"}
    rf_names = {im.path.name.split("_png.rf.")[0] for im in images if im.source == "FPDB-brain-rf"}
    assert not tv_names & rf_names  # images also in FPDB-TV are left out of the Roboflow copies
    assert all(im.brain_plane == "Trans-thalamic" for im in images if im.source == "HC18")
    assert all(im.group.startswith("fpdb:") for im in images if im.source.startswith("FPDB"))
