"""`fetalscope models` lists what is installed from the cards alone: fast, and torch is never imported."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from fetalscope.models.architectures import ARCHITECTURES, architecture_names
from fetalscope.models.cards import available_bundles, read_card

# run the real CLI in a fresh interpreter, then report which heavy modules that process imported
_WRAPPER = """
import json, sys
from fetalscope.cli import app
try:
    app(["models"])
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = sorted(m for m in ("torch", "torchvision", "timm", "onnxruntime", "numpy", "PIL") if m in sys.modules)
print("MODULES=" + json.dumps({"code": code, "heavy": heavy}))
"""


def test_models_lists_every_bundle_without_importing_torch() -> None:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _WRAPPER], capture_output=True, text=True, timeout=60)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    status = json.loads(lines[-1].removeprefix("MODULES="))
    assert status == {"code": 0, "heavy": []}, status
    assert lines[0] == "architectures: " + ", ".join(architecture_names())
    bundles = available_bundles()
    assert len(bundles) >= 1
    listed = [line for line in lines if line.startswith("bundle ")]
    assert len(listed) == len(bundles)
    for name, line in zip(bundles, listed, strict=True):
        card = read_card(name)
        revision = f" revision {card['revision']}" if "revision" in card else ""  # retrained weights of a version
        assert line.startswith(f"bundle {name}: task={card['task']}, version {card.get('version', 'n/a')}{revision}, ")
        assert " MB, classes: " + ", ".join(card["classes"]) in line
    # the 7-8 s of importing torch is gone: well under that even on a loaded 2-core machine
    assert seconds < 4.0, seconds


def test_architecture_table_matches_what_the_modules_register() -> None:
    """The torch-free name table and the registry (which imports every architecture module) agree."""
    from fetalscope.models.registry import _FACTORIES, list_models

    names = list_models()
    shipped = [n for n in names if _FACTORIES[n].__module__.startswith("fetalscope.models.")]
    assert shipped == architecture_names()
    assert all(_FACTORIES[n].__module__ == ARCHITECTURES[n] for n in shipped)
