"""Out-of-fold pooling shared by the post-processing tuners (tune_head_measure.py, tune_ctr_measure.py): the
cached held-out images of a cross-validation's fold models become one list, each tagged with its fold."""

from __future__ import annotations

from collections import Counter


def pool_folds(per_fold: list[list[dict]]) -> list[dict]:
    """``per_fold[k]``: fold model k's cached held-out records (``name`` each); one list with ``fold: k`` added.
    An image held out by two fold models is refused: the folds are not one cross-validation."""
    pooled = [{**m, "fold": k} for k, records in enumerate(per_fold) for m in records]
    twice = [name for name, n in Counter(m["name"] for m in pooled).items() if n > 1]
    if twice:
        raise SystemExit(f"{twice[0]} is held out by two fold models: are these folds of one cross-validation?")
    return pooled
