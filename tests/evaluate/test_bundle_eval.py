"""evaluate_bundle_on_data: a saved bundle on a FETAL_PLANES_DB-layout folder of phantom images."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from fetalscope.data.labels import PLANE_CLASSES
from fetalscope.data.phantoms import write_phantom_dataset
from fetalscope.errors import BadInputError
from fetalscope.evaluate.bundle_eval import align_classes, evaluate_bundle_on_data
from fetalscope.models import create_model
from fetalscope.models.bundle import save_bundle

COVERED = [c for c in PLANE_CLASSES if c != "Maternal cervix"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundle_eval")
    data = write_phantom_dataset(root / "fpdb", n_patients=8, images_per_patient=6, size=(64, 64), seed=0)
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=len(COVERED), input_size=32, in_chans=1,
                         widths=(4, 8, 8, 8))
    card = {"name": "tiny-planes", "classes": COVERED, "classes_not_covered": ["Maternal cervix"],
            "temperature": 2.0}
    bundle = save_bundle(model, root / "bundle", card)
    with (data / "FETAL_PLANES_DB_data.csv").open(newline="") as fh:
        rows = [{k.strip(): v.strip() for k, v in r.items()} for r in csv.DictReader(fh, delimiter=";")]
    return root, data, bundle, rows


def test_bundle_report_on_official_test_part(setup):
    root, data, bundle, rows = setup
    test_rows = [r for r in rows if r["Train"] == "0"]
    report = evaluate_bundle_on_data(bundle, data, split="test", out_dir=root / "eval", n_boot=100,
                                     progress=False)
    assert report["n_images"] == len(test_rows)
    assert report["classes"] == list(PLANE_CLASSES)  # the dataset's label space, model mapped into it
    cervix = report["metrics"]["per_class"][PLANE_CLASSES.index("Maternal cervix")]
    assert cervix["status"] == "not_covered"
    assert cervix["support"] == sum(r["Plane"] == "Maternal cervix" for r in test_rows)
    assert report["metrics"]["not_covered"][0]["reason"] == "the model has no output for this class"
    assert report["n_groups"] == len({r["Patient_num"] for r in test_rows})
    ops = {r["value"]: r["n"] for r in report["breakdowns"]["columns"]["Operator"]}
    assert sum(ops.values()) == len(test_rows) and set(ops) == {r["Operator"] for r in test_rows}
    assert report["context"]["temperature"] == 2.0
    on_disk = json.loads((root / "eval" / "report.json").read_text())
    assert on_disk["summary"]["accuracy"] == report["metrics"]["accuracy"]
    assert on_disk["summary"]["classes_not_covered"] == ["Maternal cervix"]
    md = (root / "eval" / "report.md").read_text()
    assert "- **temperature**: 2.0" in md and "official test part" in md


def test_bundle_report_all_split_and_cap(setup):
    _, data, bundle, rows = setup
    report = evaluate_bundle_on_data(bundle, data, split="all", max_images=7, n_boot=50, progress=False)
    assert report["n_images"] == 7
    assert "capped" in str(report["context"]["images"])
    with pytest.raises(BadInputError, match="split must be one of"):
        evaluate_bundle_on_data(bundle, data, split="training", n_boot=10)


def test_align_classes_matches_names_loosely_and_keeps_extra_model_classes():
    classes, columns = align_classes(["Fetal brain", "Other"], ["other", "fetal_brain", "Background"])
    assert classes == ["Fetal brain", "Other", "Background"]
    assert columns == [1, 0, 2]
