"""Pages render report files the code wrote; the example gallery. (The downloadable report is the analysis's
own: tests/pipeline/test_results.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fetalscope.serve.examples import BUNDLED_DIR, gallery_examples, write_bundled_examples
from fetalscope.serve.pages import ablation_page, overview_page, performance_page


def test_performance_page_renders_the_evaluation_report(tiny_bundle: Path):
    page = performance_page(tiny_bundle)
    assert page.found and tiny_bundle / "report.md" in page.sources
    report = json.loads((tiny_bundle / "report.json").read_text())
    assert report["title"] in page.markdown  # the text comes from the file ...
    n_plots = len(report["plots"])
    assert n_plots >= 3 and page.markdown.count("](data:image/png;base64,") >= n_plots  # ... and the figures
    assert "](confusion_counts.json)" not in page.markdown  # links the page cannot follow are named instead


def test_pages_say_how_to_make_missing_reports(tmp_path: Path):
    page = performance_page(tmp_path)
    assert not page.found and "fetalscope evaluate" in page.markdown
    page = ablation_page(tmp_path / "nothing")
    assert not page.found and "fetalscope ablate" in page.markdown


def test_ablation_page(ablation_dir: Path):
    page = ablation_page(ablation_dir)
    assert page.found and "baseline" in page.markdown and "| variant |" in page.markdown


def test_overview_page_has_intended_use_and_model_cards(tiny_bundle: Path):
    page = overview_page([tiny_bundle])
    text = page.markdown
    assert "not a medical device" in text and "CC BY 4.0" in text and "Baumgartner" in text
    assert "tiny-planes" in text and "a test fixture; not a real model" in text  # from card.md


def test_bundled_examples_are_synthetic_and_reproducible(tmp_path: Path):
    shipped = sorted(BUNDLED_DIR.glob("phantom_*.png"))
    assert len(shipped) == 6 and all(p.stat().st_size < 60_000 for p in shipped)
    assert "SYNTHETIC" in (BUNDLED_DIR / "README.md").read_text()
    fresh = write_bundled_examples(tmp_path)
    assert [p.name for p in fresh] == [p.name for p in shipped]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(fresh, shipped, strict=True))


def test_gallery_sources(tmp_path: Path):
    items = gallery_examples(data_dir=tmp_path / "no-shared")
    assert items and all(e.synthetic and e.path.parent == BUNDLED_DIR for e in items)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "a.png").write_bytes(shipped := (BUNDLED_DIR / "phantom_other.png").read_bytes())
    assert shipped and [e.path for e in gallery_examples(mine)] == [mine / "a.png"]


def test_gallery_reads_shared_images_in_place(shared_data: Path):
    real = [e for e in gallery_examples(data_dir=shared_data) if not e.synthetic]
    if not real:
        pytest.skip("no HC18/FOCUS/TV images in the shared folder")
    assert all(shared_data in e.path.parents for e in real)  # read by path, never copied


def test_gallery_shows_only_examples_the_model_handles(tmp_path: Path):
    from fetalscope.serve.examples import Example, vet_examples

    def ex(name: str, caption: str, truth: str | None, show: int = 12) -> Example:
        return Example(tmp_path / name, caption, False, truth=truth, show=show)

    answers = {"a.png": ("Fetal brain", 0.97), "b.png": ("Fetal brain", 0.99), "c.png": ("Fetal brain", 0.95),
               "d.png": ("Other", 0.9), "e.png": ("Fetal thorax", 0.6)}

    def classify(path: Path) -> tuple[str, float]:
        if path.name == "broken.png":
            raise OSError("unreadable")
        return answers[path.name]

    kept = vet_examples([ex("a.png", "HC18", "Fetal brain", show=2), ex("broken.png", "HC18", "Fetal brain", show=2),
                         ex("b.png", "HC18", "Fetal brain", show=2), ex("c.png", "HC18", "Fetal brain", show=2),
                         ex("d.png", "FOCUS", "Fetal thorax"), ex("e.png", "FOCUS", "Fetal thorax"),
                         ex("mine.png", "mine.png", None)], classify)
    assert [k.path.name for k in kept] == ["a.png", "b.png", "mine.png"]  # 2 per source; wrong or unsure left out
    assert kept[0].caption == "HC18; shows Fetal brain; model: Fetal brain 97%"
    assert kept[2].caption == "mine.png"  # a folder the user named is shown as it is


def test_default_gallery_on_real_images_is_honest(shared_data: Path):
    """With the shipped model, every default example it shows is one it gets right, and says so."""
    from fetalscope.imaging import load_image
    from fetalscope.pipeline import Session
    from fetalscope.serve.examples import vet_examples

    session = Session(brain_plane_model=None, brain_findings_model=None, detector=None)
    kept = vet_examples(gallery_examples(data_dir=shared_data), session.plane)
    assert any(not k.synthetic for k in kept)
    for k in kept:
        plane, p = session.plane(load_image(k.path))
        assert plane == k.truth and p >= 0.8 and f"model: {plane} {100 * p:.0f}%" in k.caption


def _percent(cell: str) -> tuple[float, list[float] | None]:
    """``'66.7% [50.0, 88.5]'`` -> ``(0.667, [0.5, 0.885])`` as the page shows them."""
    import re

    value, *ci = (float(v) / 100 for v in re.findall(r"\d+\.\d+", cell))
    return value, (ci or None)


def test_ablation_tab_shows_the_shipped_study_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Out of the box (no --ablation-dir, no runs/ablation) the tab shows the study shipped in the package, and
    every number in its table is the one in the shipped ablation.json."""
    from fetalscope import config
    from fetalscope.serve.pages import shipped_ablation_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config, "REPO_ROOT", tmp_path)  # no user runs/ablation anywhere
    shipped = shipped_ablation_dir()
    page = ablation_page(None)
    assert page.found and page.sources[0] == shipped / "ablation.md"
    table = json.loads((shipped / "ablation.json").read_text())
    study = table["study"]
    text = page.markdown
    # what the study is: data, split, model, epochs, machine, time, and that it is a small CPU study
    assert "small CPU study" in text and "FETAL_PLANES_DB" in text
    assert study["split"] in text and f"`{study['model']}`" in text
    assert f"up to {study['phase1_epochs']} frozen-backbone epochs" in text
    assert f"up to {study['phase2_epochs']} fine-tuning epochs" in text
    assert f"all variants took {study['total_seconds']:.0f} s" in text
    for part, counts in study["counts"].items():
        assert f"{part} " + ", ".join(f"{c} {n}" for c, n in counts.items()) in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| variant")]
    assert [r.split(" | ")[0].lstrip("| ") for r in rows] == [v["variant"] for v in table["variants"]]
    assert {"baseline", "frozen_only", "no_augment", "no_pretrain"} <= {v["variant"] for v in table["variants"]}
    for line, v in zip(rows, table["variants"], strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        accuracy, accuracy_ci = _percent(cells[2])
        f1, f1_ci = _percent(cells[3])
        assert accuracy == pytest.approx(v["accuracy"], abs=5e-4)
        assert accuracy_ci == pytest.approx(v["accuracy_ci"], abs=5e-4)
        assert f1 == pytest.approx(v["weighted_f1"], abs=5e-4)
        assert f1_ci == pytest.approx(v["weighted_f1_ci"], abs=5e-4)
        assert _percent(cells[4])[0] == pytest.approx(v["macro_f1"], abs=5e-4)
        assert float(cells[5]) == pytest.approx(v["ece"], abs=5e-4)
        assert float(cells[6]) == v["train_seconds"]
    # its figures are inlined, and the shipped folder holds results only: no weights, small
    assert text.count("](data:image/png;base64,") == len(list(shipped.glob("*.png"))) >= 1
    files = [p for p in shipped.iterdir() if p.is_file()]
    assert {p.suffix for p in files} <= {".json", ".md", ".png"}
    assert sum(p.stat().st_size for p in files) < 400_000
