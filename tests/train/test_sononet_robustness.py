"""The robustness report's real images: the sononet-planes test split of the shared folder (skips without it)."""

from __future__ import annotations

import json
from collections import Counter

from fetalscope import config
from fetalscope.evaluate.robustness import stratified_subsample
from fetalscope.train.recipes.sononet.common import split_of
from fetalscope.train.recipes.sononet.robustness import real_test_items


def test_items_are_the_bundle_test_split(shared_data):
    items, described = real_test_items(shared_data.parent)
    card = json.loads((config.bundled_models_dir() / "sononet-planes" / "card.json").read_text())
    counts = Counter(f"{it.source} / {it.label}" for it in items)
    assert dict(counts) == card["data"]["counts"]["test"]
    assert all(split_of(it.group) == "test" or it.source == "web-abnormal-rf" for it in items)
    assert "test split" in described
    sub = stratified_subsample(items, 120, seed=0)
    per_source = Counter(it.source for it in sub)
    assert sum(per_source.values()) == 120 and set(per_source) == set(Counter(it.source for it in items))
    assert max(per_source.values()) - min(per_source.values()) <= 1  # 24 each: every source has >= 28
