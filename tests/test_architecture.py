"""The layer rule, enforced on every test run: the import-linter contracts in ``pyproject.toml``
(``[tool.importlinter]``; docs/architecture.md explains them). Imports inside functions count.

Equivalent by hand: ``PYTHONPATH=src lint-imports``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "pyproject.toml"
CONTRACTS = {"layers", "capabilities", "evaluate-not-train", "serving-not-train", "acyclic"}


@pytest.fixture(scope="module")
def importlinter():
    try:
        import importlinter.api  # noqa: F401  (configures import-linter's graph builder)
        from importlinter.application import use_cases
    except ModuleNotFoundError as exc:  # a dev dependency: a missing one must not pass silently
        raise AssertionError("import-linter is not installed: pip install -e '.[dev]'") from exc
    return use_cases


def test_the_linted_package_is_this_checkout():
    spec = importlib.util.find_spec("fetalscope")
    assert spec is not None and spec.origin is not None
    assert Path(spec.origin).resolve().parent == REPO / "src" / "fetalscope", (
        f"fetalscope is imported from {spec.origin}, not from this checkout; put {REPO / 'src'} first on "
        "PYTHONPATH so the contracts check the code under test"
    )


def test_every_contract_is_declared(importlinter):
    options = importlinter.read_user_options(str(CONFIG))
    assert options.session_options["root_packages"] == ["fetalscope"]
    declared = {c["id"] for c in options.contracts_options}
    assert declared >= CONTRACTS, f"contracts missing from pyproject.toml: {sorted(CONTRACTS - declared)}"


def test_import_contracts_hold(importlinter, capsys):
    kept = importlinter.lint_imports(config_filename=str(CONFIG), cache_dir=None, no_logo=True)
    output = capsys.readouterr().out
    assert kept, "import contracts broken (see docs/architecture.md):\n" + output
