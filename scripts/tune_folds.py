"""Out-of-fold pooling shared by the post-processing tuners (tune_head_measure.py, tune_ctr_measure.py): the
cached held-out images of a cross-validation's fold models become one list, each tagged with its fold."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any


def pool_folds(per_fold: list[list[dict]]) -> list[dict]:
    """``per_fold[k]``: fold model k's cached held-out records (``name`` each); one list with ``fold: k`` added.
    An image held out by two fold models is refused: the folds are not one cross-validation."""
    pooled = [{**m, "fold": k} for k, records in enumerate(per_fold) for m in records]
    twice = [name for name, n in Counter(m["name"] for m in pooled).items() if n > 1]
    if twice:
        raise SystemExit(f"{twice[0]} is held out by two fold models: are these folds of one cross-validation?")
    return pooled


def write_report(out: Path, text: list[str]) -> None:
    """Write a Markdown report (lines) and print it."""
    out.write_text("\n".join(text) + "\n", encoding="utf-8")
    print("\n".join(text))


def write_card_inference(bundle: str | Path, key: str, value: dict[str, Any]) -> None:
    """Set the bundle card's ``inference.<key>`` and rewrite card.json and card.md."""
    from fetalscope.biometry.segbundle import render_seg_card_md
    from fetalscope.models.bundle import write_card_files

    folder = Path(bundle)
    card = json.loads((folder / "card.json").read_text())
    card.setdefault("inference", {})[key] = value
    write_card_files(folder, card, render_seg_card_md(card))
    print(f"wrote inference.{key} into {folder / 'card.json'}")
