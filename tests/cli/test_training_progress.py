"""Progress of the long training and evaluation verbs: `train`, `ablate` and `evaluate` draw Rich bars with
count, rate and time left on a terminal, and print none of that when their output is piped."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from fetalscope.cli import app, common
from fetalscope.data.labels import PLANE_CLASSES

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
runner = CliRunner()
TINY_TRAIN = ["--model", "small_cnn", "--no-pretrained", "--image-size", "48", "--phase1-epochs", "2",
              "--phase2-epochs", "2", "--max-images", "40"]


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """The CLI's console as if stderr were a 200-column terminal; returns what it wrote."""
    screen = io.StringIO()
    monkeypatch.setattr(common, "console", Console(file=screen, force_terminal=True, width=200, soft_wrap=True))
    return screen


def _shown(screen: io.StringIO) -> str:
    return ANSI.sub("", screen.getvalue())


def test_train_shows_epoch_and_batch_bars_with_loss_and_accuracy(phantom_fpdb: Path, tmp_path: Path,
                                                                 terminal: io.StringIO) -> None:
    result = runner.invoke(app, ["train", "--data", str(phantom_fpdb), "--out", str(tmp_path / "run"), *TINY_TRAIN])
    assert result.exit_code == 0, result.output
    shown = _shown(terminal)
    assert "bundle:" in shown
    assert re.search(r"fine-tune epochs \(train loss \d+\.\d{3}, val accuracy \d+\.\d%\)\s.*2/2", shown), shown
    assert re.search(r"head \(frozen backbone\) epochs .*2/2", shown), shown
    assert re.search(r"fine-tune epoch 2/2, loss \d+\.\d{3}", shown), shown
    assert "batches/s" in shown and "epochs/s" in shown and "left" in shown


def test_train_piped_prints_no_bar(phantom_fpdb: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--data", str(phantom_fpdb), "--out", str(tmp_path / "run"), *TINY_TRAIN])
    assert result.exit_code == 0, result.output
    assert "bundle:" in result.output
    assert "batches/s" not in result.output and "epochs" not in result.output


def test_ablate_counts_variants(phantom_fpdb: Path, tmp_path: Path, terminal: io.StringIO) -> None:
    config = tmp_path / "base.yaml"
    config.write_text("pretrained: false\ntensorboard: false\n")
    result = runner.invoke(app, ["ablate", "--config", str(config), "--data", str(phantom_fpdb),
                                 "--out", str(tmp_path / "abl"), "--variants", "baseline,frozen_only",
                                 "--model", "small_cnn", "--image-size", "48", "--phase1-epochs", "1",
                                 "--phase2-epochs", "1", "--max-images", "30"])
    assert result.exit_code == 0, _shown(terminal)
    shown = _shown(terminal)
    assert re.search(r"variants \(last: frozen_only\)\s.*2/2.*variants/s", shown), shown
    assert "ablation table:" in shown


def test_evaluate_shows_an_image_bar(phantom_fpdb: Path, tmp_path: Path, terminal: io.StringIO) -> None:
    from fetalscope.models import create_model
    from fetalscope.models.bundle import save_bundle

    bundle = save_bundle(create_model("small_cnn", num_classes=6), tmp_path / "bundle",
                         {"name": "tiny", "task": "planes", "classes": list(PLANE_CLASSES)})
    result = runner.invoke(app, ["evaluate", "--model", str(bundle), "--data", str(phantom_fpdb), "--split", "all",
                                 "--max-images", "50", "--out", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    shown = _shown(terminal)
    assert re.search(r"evaluate\s.*50/50.*images/s", shown), shown
    assert "report:" in shown
