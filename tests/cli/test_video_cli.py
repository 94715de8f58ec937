"""``fetalscope video`` on a clip written from the bundled example images: the files and their columns."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
from typer.testing import CliRunner

from fetalscope.cli.app import app
from fetalscope.imaging.loader import load_image

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "fetalscope" / "serve" / "examples"


def test_video_cli_writes_the_contract(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (192, 144))
    for name, count in (("phantom_other.png", 8), ("phantom_fetal_thorax.png", 10), ("phantom_other.png", 8)):
        rgb = cv2.resize(load_image(EXAMPLES / name).pixels, (192, 144))
        for _ in range(count):
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["video", str(clip), "--output", str(out), "--max-frames", "13",
                                      "--runtime", "onnx-int8", "--no-measure"])
    assert result.exit_code == 0, result.output
    with (out / "frames.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    summary = json.loads((out / "summary.json").read_text())
    classes = summary["classes"]
    assert list(rows[0])[:4] == ["frame", "time_s", "plane", "plane_probability"]
    assert [f"p_{c}" for c in classes] == list(rows[0])[4:4 + len(classes)]
    assert [int(r["frame"]) for r in rows] == list(range(0, 26, 2))  # budget 13 of 26 -> stride 2
    assert summary["frames"] == 13 and summary["fps_processed"] == 5.0 and summary["model"]["runtime"] == "onnx-int8"
    assert {"frames", "fps_source", "fps_processed", "segments", "best_frames", "measurements"} <= set(summary)
    assert [s["plane"] for s in summary["segments"]] == ["Fetal thorax"]
    best = summary["best_frames"]["Fetal thorax"]
    assert 8 <= best["frame"] <= 17
    assert cv2.imread(str(out / best["image"])).shape == (144, 192, 3)
    assert cv2.imread(str(out / "timeline.png")) is not None


def test_video_cli_bad_input_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    result = CliRunner().invoke(app, ["video", str(bad), "--output", str(tmp_path / "o")])
    assert result.exit_code == 2 and "bad.mp4" in result.output
    assert not (tmp_path / "o").exists()
