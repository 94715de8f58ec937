"""What a new user reads: the terminal output of the verbs says what matters (not ultrasound, the numbers
measured, how many maps were written) and a taken port is a one-line error before any model loads."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fetalscope.cli import app
from fetalscope.serve.examples import BUNDLED_DIR

runner = CliRunner()


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    from skimage import data

    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


def test_predict_to_the_terminal_says_when_an_image_is_not_ultrasound(photo):
    result = runner.invoke(app, ["predict", str(photo), str(BUNDLED_DIR / "phantom_fetal_brain.png")])
    assert result.exit_code == 0, result.output
    lines = {Path(line.split("\t")[0]).name: line for line in result.stdout.splitlines() if "\t" in line}
    assert "NOT ULTRASOUND" in lines["astronaut.png"] and "colour" in lines["astronaut.png"]
    assert "NOT ULTRASOUND" not in lines["phantom_fetal_brain.png"]


def test_measure_prints_lines_for_people_and_json_on_request(tmp_path):
    image = BUNDLED_DIR / "phantom_fetal_brain.png"
    plain = runner.invoke(app, ["measure", str(image), "--what", "head", "--pixel-size", "0.2"])
    assert plain.exit_code == 0, plain.output
    line = plain.stdout.strip()
    assert line.startswith(str(image)) and "\thead\t" in line and "quality" in line and not line.startswith("{")
    as_json = runner.invoke(app, ["measure", str(image), "--what", "head", "--pixel-size", "0.2", "--json"])
    record = json.loads(as_json.stdout)
    assert record["measurement"] == "head" and record["pixel_size_mm"] == 0.2
    if record["hc_mm"] is not None:  # the line shows the record's numbers
        assert f"HC {record['hc_mm']:.1f} mm" in line and f"GA {record['ga']}" in line
    out = tmp_path / "m.json"
    both = runner.invoke(app, ["measure", str(image), "--what", "head", "--output", str(out), "--json"])
    assert json.loads(both.stdout)["measurement"] == "head" and json.loads(out.read_text())[0]["measurement"] == "head"


def test_explain_counts_maps_and_images(tmp_path):
    out = tmp_path / "maps"
    result = runner.invoke(app, ["explain", str(BUNDLED_DIR / "phantom_fetal_brain.png"), "--methods",
                                 "gradcam,gradcam++,guided_backprop", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote 3 explanation map(s) of 1 image(s)" in result.output
    assert len(list(out.glob("*.png"))) == 3


def test_serve_on_a_taken_port_is_a_one_line_error_before_loading():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "COLUMNS": "40"}
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "fetalscope", "serve", "--port", str(port)], env=env,
                              capture_output=True, text=True, timeout=120)
        seconds = time.monotonic() - t0
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and f"port {port} on 127.0.0.1 is already in use" in errors[0]
    assert "Traceback" not in proc.stderr and "Errno" not in proc.stderr
    assert seconds < 60  # no model was loaded first


def test_head_label_stays_inside_the_image():
    """The HC label is drawn whole, inside the image, even when the head fills a large image (it was cut off
    at the top)."""
    import cv2

    from fetalscope.biometry.ellipse import Ellipse, draw_ellipse

    rgb = np.full((800, 1200, 3), 60, np.uint8)
    full = Ellipse(cx=600, cy=400, a=590, b=395, angle_deg=0)  # touches every border
    label = "HC 283.3 +/- 5.6 mm (90%)"  # the longest label: with its interval
    changed = (draw_ellipse(rgb, full, (255, 220, 0), label=label) != draw_ellipse(rgb, full, (255, 220, 0))).any(2)
    rows, cols = np.where(changed)
    t = max(1, round(1200 / 400))
    (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * t + 0.1, t)
    assert rows.min() > 0 and cols.min() >= 0 and rows.max() < 799 and cols.max() < 1199
    assert rows.max() - rows.min() + 1 >= th and cols.max() - cols.min() + 1 >= tw  # the whole text is there


def test_help_is_plain_and_whole_at_80_columns():
    """Flags carry no <bool> placeholder and option lists are not cut off with an ellipsis."""
    for verb in ("predict", "explain", "measure", "detect", "serve"):
        text = runner.invoke(app, [verb, "--help"], env={"COLUMNS": "80"}).output
        assert "<bool>" not in text and "\u2026" not in text, verb
        assert max(len(line) for line in text.splitlines()) <= 80, verb
    text = " ".join(runner.invoke(app, ["explain", "--help"], env={"COLUMNS": "80"}).output.split())
    for method in ("gradcam++", "guided_backprop", "guided_gradcam", "occlusion", "lime", "saliency"):
        assert method in text
    assert "onnx-int8" in " ".join(runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "80"}).output.split())


def test_detection_drawing_names_the_skull_estimate():
    """The skull ellipse on a detection drawing is grey and labelled, not a yellow ring like the HC ellipse."""
    from fetalscope.detect.api import SKULL_COLOUR, draw_boxes
    from fetalscope.detect.skull import SkullEllipse

    rgb = np.zeros((400, 600, 3), np.uint8)
    skull = SkullEllipse(cx=300, cy=180, width=360, height=240, angle=0.0, score=1.0)
    drawn = draw_boxes(rgb, [], skull=skull)
    grey = (drawn == np.array(SKULL_COLOUR, np.uint8)).all(axis=2)
    assert grey[:300].any()  # the ellipse
    assert grey[305:].any()  # and its label, below it
    assert not ((drawn[..., 0] > 200) & (drawn[..., 1] > 200) & (drawn[..., 2] < 50)).any()  # no yellow


def test_measurement_line_shows_each_interval_beside_its_value():
    from fetalscope.pipeline.measure import measurement_line

    head = {"image": "a.png", "measurement": "head", "quality": "ok", "hc_mm": 170.24, "bpd_mm": 45.0,
            "hc_interval_mm": [166.91, 173.52], "hc_interval_coverage": 0.9, "ga": "19w4d", "flags": []}
    assert "HC 170.2 mm (90% interval 166.9-173.5)\tBPD 45.0 mm" in measurement_line(head)
    ctr = {"image": "t.png", "measurement": "cardiothoracic", "quality": "ok",
           "ctr": {"circumference": 0.512, "area": 0.26, "diameter": 0.55}, "ctr_interval": [0.466, 0.558],
           "ctr_interval_coverage": 0.9, "flags": []}
    assert "CTR (circumference) 0.512 (90% interval 0.466-0.558)\tCTR (area) 0.260" in measurement_line(ctr)
    assert "interval" not in measurement_line({**head, "hc_interval_mm": None})
