"""`fetalscope measure`: records routed by the plane model, with the contract's field names."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_measure_a_folder_with_per_image_pixel_sizes_and_drawings(tmp_path):
    """A CSV gives each image its own pixel size (by path or file name); --draw writes the ellipses."""
    import shutil

    from fetalscope.serve.examples import BUNDLED_DIR

    folder = tmp_path / "heads"
    folder.mkdir()
    for name in ("phantom_fetal_brain.png", "phantom_fetal_thorax.png"):
        shutil.copy(BUNDLED_DIR / name, folder / name)
    sizes = tmp_path / "sizes.csv"
    thorax = folder / "phantom_fetal_thorax.png"
    sizes.write_text(f"filename,pixel_size_mm\nphantom_fetal_brain.png,0.12\n{thorax},0.2\n")
    out, drawn = tmp_path / "m.json", tmp_path / "drawn"
    result = runner.invoke(app, ["measure", str(folder), "--what", "head", "--pixel-sizes", str(sizes),
                                 "--draw", str(drawn), "--output", str(out)])
    assert result.exit_code == 0, result.output
    records = {Path(r["image"]).name: r for r in json.loads(out.read_text())}
    assert records["phantom_fetal_brain.png"]["pixel_size_mm"] == 0.12
    assert records["phantom_fetal_thorax.png"]["pixel_size_mm"] == 0.2
    assert all(r["pixel_size_source"] == "argument" for r in records.values())
    assert sorted(p.name for p in drawn.glob("*.png")) == ["phantom_fetal_brain_measure.png",
                                                            "phantom_fetal_thorax_measure.png"]
    assert all(Path(r["overlay"]).is_file() for r in records.values())

    bad = tmp_path / "bad.csv"
    bad.write_text("name,size\na.png,0.1\n")
    result = runner.invoke(app, ["measure", str(folder), "--pixel-sizes", str(bad)])
    assert result.exit_code == 2 and "pixel_size_mm" in result.output
    bad.write_text("path,pixel_size_mm\nphantom_fetal_brain.png,0.1\nphantom_fetal_thorax.png,metres\n")
    result = runner.invoke(app, ["measure", str(folder), "--pixel-sizes", str(bad), "--output",
                                 str(tmp_path / "x.json")])
    assert result.exit_code == 2 and "line 3" in result.output and not (tmp_path / "x.json").exists()


def test_colour_photo_gets_nothing_and_a_forced_head_is_rejected(tmp_path):
    """The route says why nothing was measured; a head asked for by name is made but rejected, not `ok`."""
    from PIL import Image
    from skimage import data

    photo = tmp_path / "chelsea.png"
    Image.fromarray(data.chelsea()).save(photo)
    result = runner.invoke(app, ["measure", str(photo), "--pixel-size", "0.1", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout[result.stdout.index("{"):])
    assert record["measurement"] is None and record["quality"] == "not_measured"
    assert record["route"]["by"] == "ood" and "B-mode" in record["flags"][0]
    result = runner.invoke(app, ["measure", str(photo), "--what", "head", "--pixel-size", "0.1", "--json"])
    record = json.loads(result.stdout[result.stdout.index("{"):])
    assert record["quality"] == "rejected" and record["hc_mm"] is None
    assert record["flags"][0].startswith("not_head_plane")



_MEASURE_WRAPPER = """
import json, sys
from fetalscope.cli import app
try:
    app(["measure", sys.argv[1], "--pixel-size", "0.1", "--json"])
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = sorted(m for m in ("timm", "pytorch_grad_cam", "captum", "sklearn") if m in sys.modules)
print("MODULES=" + json.dumps({"code": code, "heavy": heavy}))
"""


def test_a_measurement_on_the_cpu_loads_no_training_or_explanation_code(shared_data):
    """ONNX Runtime measures (the default on CPU): the ensembles' PyTorch networks are never built, so timm is not
    imported, and neither are the explanation libraries (a one-image `measure` went from 9 s to under 4 s)."""
    import subprocess
    import sys

    image = shared_data / "hc18" / "training_set" / "010_HC.png"
    proc = subprocess.run([sys.executable, "-c", _MEASURE_WRAPPER, str(image)], capture_output=True, text=True,
                          timeout=300)
    lines = proc.stdout.splitlines()
    status = json.loads(lines[-1].removeprefix("MODULES="))
    assert status == {"code": 0, "heavy": []}, (status, proc.stderr[-2000:])
    record = json.loads("\n".join(lines[:-1]))
    assert record["measurement"] == "head" and record["quality"] == "ok" and 50 < record["hc_mm"] < 400
    assert record["model"]["runtime"] == "onnx" and record["model"]["id"] == "hc18-head"
