"""Bundles: save -> load gives the same model, the card is complete, the Markdown card says what matters."""

from __future__ import annotations

import json

import pytest
import torch

from fetalscope import config
from fetalscope.errors import BadInputError, MissingWeightsError
from fetalscope.models import create_model
from fetalscope.models.bundle import Bundle, load_bundle, read_card, render_card_md, save_bundle

CLASSES = ["Fetal abdomen", "Fetal brain", "Fetal femur", "Fetal thorax"]


def card(**extra) -> dict:
    base = {
        "name": "planes-test",
        "version": "0.0.1",
        "task": "plane classification",
        "classes": CLASSES,
        "classes_not_covered": ["Maternal cervix", "Other"],
        "data": {"source": "synthetic phantoms", "licence": "CC0", "split": "patient-disjoint 70/15/15",
                 "image_list_sha256": "ab" * 32, "counts": {"train": {"Fetal brain": 10}, "val": 4}},
        "metrics": {"accuracy": {"value": 0.875, "ci_low": 0.80, "ci_high": 0.93},
                    "macro_f1": 0.81, "per_class": {"Fetal brain": {"recall": 0.9}}},
        "limitations": ["fails on cervix images (class not covered)"],
        "citations": ["Burgos-Artizzu et al. 2020, FETAL_PLANES_DB"],
        "temperature": 1.5,
    }
    base.update(extra)
    return base


def test_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=4, input_size=48, in_chans=1, widths=(8, 16, 32, 64))
    model.train()  # save_bundle must store eval-independent weights and restore the mode
    folder = save_bundle(model, tmp_path / "b", card())
    assert model.training
    assert {p.name for p in folder.iterdir()} >= {"card.json", "model.safetensors", "card.md"}

    bundle = load_bundle(folder)
    assert isinstance(bundle, Bundle)
    assert not bundle.model.training
    assert bundle.classes == CLASSES
    assert bundle.preprocess.input_size == (48, 48) and bundle.preprocess.channels == 1
    assert bundle.temperature == 1.5
    assert bundle.onnx_path is None
    x = torch.randn(3, 1, 48, 48)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(bundle.model(x), model(x), rtol=0, atol=0)


def test_card_is_filled_from_the_model(tmp_path):
    model = create_model("fetalnet", num_classes=4, se=False)
    folder = save_bundle(model, tmp_path / "f", {"classes": CLASSES})
    saved = json.loads((folder / "card.json").read_text())
    assert saved["architecture"] == "fetalnet"
    assert saved["arch_kwargs"] == {"se": False}
    assert saved["num_classes"] == 4
    assert saved["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    assert saved["temperature"] == 1.0
    assert "torch" in saved["software"] and "fetalscope" in saved["software"]
    assert saved["created"][:4].isdigit()
    assert saved["base_weights"]["name"] == "none (random initialisation)"  # built with pretrained=False
    assert read_card(folder) == saved
    loaded = load_bundle(folder / "card.json")
    assert loaded.model.head.se.__class__.__name__ == "Identity"


def test_init_only_options_are_not_stored(tmp_path):
    from torchvision.models import resnet18

    weights = tmp_path / "r18.pth"
    torch.save(resnet18(weights=None).state_dict(), weights)
    model = create_model("resnet18", num_classes=4, pretrained=True, weights_path=str(weights))
    folder = save_bundle(model, tmp_path / "r", {"classes": CLASSES})
    weights.unlink()  # the bundle must not need the original weights any more
    assert "weights_path" not in read_card(folder)["arch_kwargs"]
    assert load_bundle(folder).model.head[-1].out_features == 4


def test_class_count_must_match(tmp_path):
    model = create_model("small_cnn", num_classes=3)
    with pytest.raises(BadInputError, match="3 outputs"):
        save_bundle(model, tmp_path / "x", {"classes": CLASSES})


def test_bundled_name_resolution_and_missing_names(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "bundled_models_dir", lambda: tmp_path)
    save_bundle(create_model("small_cnn", num_classes=4, input_size=32), tmp_path / "tiny_planes", card())
    assert load_bundle("tiny_planes").path == tmp_path / "tiny_planes"
    with pytest.raises(MissingWeightsError, match="tiny_planes"):
        load_bundle("tiny_plane")


def test_missing_weights_file_is_reported(tmp_path):
    folder = save_bundle(create_model("small_cnn", num_classes=4, input_size=32), tmp_path / "b", card())
    (folder / "model.safetensors").unlink()
    with pytest.raises(MissingWeightsError, match="model.safetensors"):
        load_bundle(folder)


@pytest.mark.parametrize(("text", "says"), [("{not json", "is not a readable model card"), ("[1, 2]", "holds a list"),
                                             (b"\xff\xfe card", "not a readable model card")])
def test_a_broken_card_is_one_clear_error_wherever_the_bundle_is_read(tmp_path, text, says):
    from typer.testing import CliRunner

    from fetalscope.cli import app

    folder = save_bundle(create_model("small_cnn", num_classes=4, input_size=32), tmp_path / "b", card())
    path = folder / "card.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    for read in (load_bundle, read_card):
        with pytest.raises(MissingWeightsError, match=says) as err:
            read(folder)
        assert str(path) in str(err.value)
    from PIL import Image

    image = tmp_path / "x.png"  # the CLI says it in one line and writes nothing
    Image.new("L", (64, 48), 90).save(image)
    out = tmp_path / "o.parquet"
    result = CliRunner().invoke(app, ["batch", str(image), "-o", str(out), "--model", str(folder)])
    assert result.exit_code != 0 and says in result.output and "Traceback" not in result.output, result.output
    assert not out.exists()


def test_weights_of_another_architecture_are_rejected(tmp_path):
    folder = save_bundle(create_model("small_cnn", num_classes=4, input_size=32), tmp_path / "b", card())
    data = json.loads((folder / "card.json").read_text())
    data["arch_kwargs"]["widths"] = [8, 8, 8, 8]
    (folder / "card.json").write_text(json.dumps(data))
    with pytest.raises(MissingWeightsError, match="does not match architecture small_cnn"):
        load_bundle(folder)


def test_card_markdown_covers_use_data_weights_metrics(tmp_path):
    model = create_model("efficientnet_lite0", num_classes=4, pretrained=True)
    folder = save_bundle(model, tmp_path / "e", card())
    assert "ImageNet" in read_card(folder)["base_weights"]["name"]
    md = (folder / "card.md").read_text()
    assert md == render_card_md(read_card(folder))
    assert "not a medical device" in md.lower()
    assert "Maternal cervix" in md  # classes not covered
    assert "CC0" in md and "patient-disjoint" in md
    assert "Apache-2.0" in md and "grey area" in md  # base weights licence and ImageNet note
    assert "0.875 (95% CI 0.800-0.930)" in md
    assert "per_class.Fetal brain.recall" in md
    assert "fails on cervix images" in md and "Burgos-Artizzu" in md


def test_every_bundled_model_file_is_under_25_mb_and_has_a_card():
    """The project's rule for models kept in the repository: each file under 25 MB, with a model card."""
    root = config.bundled_models_dir()
    folders = [f for f in sorted(root.iterdir()) if f.is_dir() and not f.name.startswith(("_", "."))]
    assert folders, f"no bundled models under {root}"
    for folder in folders:
        weights = [f for f in folder.iterdir() if f.suffix in (".onnx", ".safetensors", ".pt")]
        assert weights, f"{folder.name}: no model file"
        assert (folder / "card.json").is_file() and (folder / "card.md").is_file(), f"{folder.name}: no card"
        for f in weights:
            assert f.stat().st_size < 25_000_000, f"{folder.name}/{f.name}: {f.stat().st_size} bytes"


@pytest.mark.parametrize(("bundle", "key"), [("sononet-planes", "architecture"), ("hc18-head", "arch_kwargs"),
                                             ("hc18-head", "preprocess"), ("brain-structures", "classes")])
def test_an_incomplete_card_names_what_it_lacks_for_every_kind_of_bundle(tmp_path, bundle, key):
    from fetalscope.biometry.segbundle import load_seg_bundle
    from fetalscope.detect.bundle_io import load_detector

    load = {"sononet-planes": load_bundle, "hc18-head": load_seg_bundle, "brain-structures": load_detector}[bundle]
    data = json.loads((config.bundled_models_dir() / bundle / "card.json").read_text())
    del data[key]
    folder = tmp_path / bundle  # the card alone: it is checked before any weights are read
    folder.mkdir()
    (folder / "card.json").write_text(json.dumps(data))
    with pytest.raises(MissingWeightsError, match=f"card.json has no '{key}'; the bundle is incomplete"):
        load(folder)
