"""`fetalscope measure`: records routed by the plane model, with the contract's field names."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from fetalscope.cli import app

runner = CliRunner()


def test_cardiothoracic_record_schema(shared_data, tmp_path):
    image = sorted((shared_data / "focus_fetal_thorax" / "images").glob("*.png"))[0]
    out = tmp_path / "results.json"
    result = runner.invoke(app, ["measure", str(image), "--what", "cardiothoracic", "--output", str(out)])
    assert result.exit_code == 0, result.output
    (record,) = json.loads(out.read_text())
    assert record["image"].endswith(image.name)
    for part in ("heart", "thorax"):
        assert set(record[part]) >= {"cx", "cy", "a", "b", "angle_deg"}
    assert set(record["ctr"]) == {"circumference", "area", "diameter"}
    assert 0.3 < record["ctr"]["circumference"] < 0.7
    assert isinstance(record["flags"], list) and record["model"]["id"]
    # heart inside thorax: its centre lies within the thorax ellipse's bounding radius
    h, t = record["heart"], record["thorax"]
    assert ((h["cx"] - t["cx"]) ** 2 + (h["cy"] - t["cy"]) ** 2) ** 0.5 < max(t["a"], t["b"])


def test_auto_routing_by_plane(shared_data, tmp_path):
    thorax = sorted((shared_data / "focus_fetal_thorax" / "images").glob("*.png"))[0]
    out = tmp_path / "auto.json"
    result = runner.invoke(app, ["measure", str(thorax), "--output", str(out)])
    assert result.exit_code == 0, result.output
    (record,) = json.loads(out.read_text())
    assert record["measurement"] == "cardiothoracic" and record["plane"] == "Fetal thorax"


def test_bad_pixel_size_is_refused(tmp_path):
    result = runner.invoke(app, ["measure", str(tmp_path), "--pixel-size", "-1"])
    assert result.exit_code == 2 and "--pixel-size" in result.output
    result = runner.invoke(app, ["measure", str(tmp_path), "--what", "femur"])
    assert result.exit_code == 2 and "--what must be one of" in result.output
