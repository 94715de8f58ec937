"""`fetalscope batch` with the local engine, on real files with hostile ones among them: one row per file, the
same answers as the pipeline session, error rows, resume, interruption, manifests and bad options."""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from fetalscope.cli import app
from fetalscope.errors import BadInputError
from fetalscope.pipeline.batch.manifest import read_items
from fetalscope.pipeline.batch.tasks import TASKS, parse_tasks
from fetalscope.pipeline.session import Session

runner = CliRunner()


def batch(*args: object):
    return runner.invoke(app, ["batch", *map(str, args)])


def text(value: object) -> str:
    """A Parquet string cell as the CSV row writes it (a null is '')."""
    return value if isinstance(value, str) else ""


@pytest.fixture(scope="module")
def session() -> Session:
    return Session()


@pytest.fixture(scope="module")
def first_run(archive: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float, str]:
    out = tmp_path_factory.mktemp("batch") / "archive.parquet"
    t0 = time.perf_counter()
    result = batch(archive, "--output", out)
    assert result.exit_code == 0, result.output
    return out, time.perf_counter() - t0, result.output


def test_one_row_per_file_error_rows_for_bad_ones_and_the_sessions_answers(first_run, archive_files, session):
    out, _, log = first_run
    rows = pd.read_parquet(out)
    assert sorted(rows["path"]) == [str(p) for p in archive_files] and rows["path"].is_unique
    assert list(rows.columns[:4]) == ["path", "sha256", "status", "error"]
    bad = rows[rows["status"] == "error"].set_index("path")["error"]
    assert sorted(Path(p).name for p in bad.index) == ["corrupt.png", "empty.png", "text.png"]
    said = {"corrupt.png": "corrupt or unreadable image", "empty.png": "file is empty",
            "text.png": "not a readable image"}
    for path, message in bad.items():
        assert message.startswith(path) and said[Path(path).name] in message, message
    ok = rows[rows["status"] == "ok"]
    assert len(ok) == len(archive_files) - 3 and ok["error"].isna().all()
    for row in ok.to_dict("records"):
        assert row["sha256"] == hashlib.sha256(Path(row["path"]).read_bytes()).hexdigest()
        expected = session.analyse(row["path"], name=row["path"]).to_row()
        assert row["plane"] == expected["plane"] and text(row["brain_plane"]) == expected["brain_plane"]
        for c in ("plane_probability", "p_Fetal brain", "p_Fetal thorax", "p_Other"):
            assert row[c] == pytest.approx(expected[c], abs=1e-6), c
    for col in ("time_load_ms", "time_plane_ms", "time_total_ms", "time_row_ms"):
        assert (ok[col] > 0).all(), col
    assert ok["p_Maternal cervix"].isna().all()  # a class the model does not cover: null, not a number
    assert f"{len(ok)} ok, 3 error" in log and "planes: " in log


def test_resume_adds_nothing_and_takes_under_half_the_time(first_run, archive, tmp_path):
    out, first_seconds, _ = first_run
    again = tmp_path / "again.parquet"
    shutil.copy(out, again)
    before = pd.read_parquet(again)
    t0 = time.perf_counter()
    resumed = batch(archive, "--output", again, "--resume")
    seconds = time.perf_counter() - t0
    assert resumed.exit_code == 0, resumed.output
    after = pd.read_parquet(again)
    n_ok = int((before["status"] == "ok").sum())
    assert "3 file(s) analysed" in resumed.output and f"{n_ok} skipped (already done)" in resumed.output
    assert len(after) == len(before) and after["path"].is_unique
    keep = ["path", "sha256", "status", "plane", "plane_probability", "time_row_ms"]  # the same rows, not re-run
    pd.testing.assert_frame_equal(after[after["status"] == "ok"][keep].reset_index(drop=True),
                                  before[before["status"] == "ok"][keep].reset_index(drop=True))
    assert (after[after["status"] == "error"]["path"] == before[before["status"] == "error"]["path"]).all()
    assert seconds < first_seconds / 2, (seconds, first_seconds)


def test_resume_retries_errors_and_reanalyses_changed_files(example_pngs, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(example_pngs[0], folder / "a.png")
    shutil.copy(example_pngs[1], folder / "b.png")
    (folder / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "out.parquet"
    assert batch(folder, "-o", out).exit_code == 0
    first = pd.read_parquet(out).set_index("path")
    shutil.copy(example_pngs[2], folder / "c.png")  # the broken file is fixed
    Image.open(example_pngs[3]).save(folder / "b.png")  # another image under the same name
    resumed = batch(folder, "-o", out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "2 file(s) analysed" in resumed.output and "1 skipped" in resumed.output
    after = pd.read_parquet(out).set_index("path")
    assert len(after) == 3 and (after["status"] == "ok").all()
    b = str((folder / "b.png").resolve())
    assert after.loc[b, "sha256"] != first.loc[b, "sha256"]
    assert after.loc[b, "sha256"] == hashlib.sha256((folder / "b.png").read_bytes()).hexdigest()


def test_interrupt_leaves_a_readable_output_that_resume_finishes(example_pngs, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    n = 40
    for i in range(n):
        shutil.copy(example_pngs[i % len(example_pngs)], folder / f"img{i:03d}.png")
    out = tmp_path / "run.parquet"
    parts = tmp_path / "run.parquet.parts"
    proc = subprocess.Popen([sys.executable, "-m", "fetalscope", "batch", str(folder), "-o", str(out),
                             "--flush-every", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not (parts.is_dir() and any(parts.glob("part-*.parquet"))):
        assert proc.poll() is None and time.monotonic() < deadline, "no part file was written"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    log, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, log
    assert "--resume" in log and not parts.exists()
    done = pd.read_parquet(out)
    assert 0 < len(done) < n and done["path"].is_unique and (done["status"] == "ok").all()
    resumed = batch(folder, "-o", out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert f"{len(done)} skipped" in resumed.output and f"{n - len(done)} file(s) analysed" in resumed.output
    final = pd.read_parquet(out)
    assert sorted(final["path"]) == sorted(str(p.resolve()) for p in folder.glob("*.png"))
    assert final["path"].is_unique and (final["status"] == "ok").all()
    kept = final.set_index("path").loc[done["path"], "worker"]
    assert (kept == done.set_index("path")["worker"]).all()  # rows done before the interrupt were not redone
    assert kept.str.endswith(f":{proc.pid}").all()


def test_manifest_paths_pixel_sizes_and_missing_files(example_pngs, tmp_path):
    shutil.copy(example_pngs[0], tmp_path / "x.png")
    manifest = tmp_path / "list.csv"
    pd.DataFrame({"path": ["x.png", str(example_pngs[1]), "gone.png"],
                  "pixel_size_mm": [0.12, None, 0.2]}).to_csv(manifest, index=False)
    pd.read_csv(manifest).to_parquet(tmp_path / "list.parquet")
    items = read_items([tmp_path / "list.parquet"])
    assert [Path(i.path).name for i in items] == ["x.png", example_pngs[1].name, "gone.png"]
    assert [i.pixel_size_mm for i in items] == [0.12, None, 0.2]
    out = tmp_path / "m.parquet"
    result = batch(manifest, "-o", out)
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(out).set_index("path")
    assert rows.loc[str((tmp_path / "x.png").resolve()), "pixel_size_mm"] == 0.12
    gone = rows.loc[str((tmp_path / "gone.png").resolve())]
    assert gone["status"] == "error" and "no such file" in gone["error"].lower()


def test_tasks_are_a_registry_and_bad_options_change_nothing(example_pngs, tmp_path):
    assert [t.name for t in parse_tasks("measure,detect")] == ["predict", "measure", "detect"]
    assert set(TASKS) >= {"predict", "detect", "measure", "quality"}
    with pytest.raises(BadInputError, match="unknown batch task.*'colour'.*choose from predict"):
        parse_tasks("predict,colour")
    out = tmp_path / "o.parquet"
    image = example_pngs[0]
    for args, message in ((["--tasks", "colour"], "unknown batch task"),
                          (["--engine", "spark"], "--engine must be one of"),
                          (["--address", "auto"], "--address needs --engine ray"),
                          (["--workers", "2"], "use --engine ray"),
                          (["-o", tmp_path / "o.csv"], "must end in .parquet")):
        result = batch(image, "-o", out, *args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
        assert not out.exists()
    out.write_bytes(b"an earlier result")
    result = batch(image, "-o", out)
    assert result.exit_code == 2 and "already exists" in result.output and out.read_bytes() == b"an earlier result"
    result = batch(image, "-o", out, "--resume")  # not an archive: said in one line, left as it is
    assert result.exit_code == 2 and "is not an archive of fetalscope batch" in result.output, result.output
    assert out.read_bytes() == b"an earlier result" and not out.with_name(out.name + ".parts").exists()
    bad_manifest = tmp_path / "m.csv"
    bad_manifest.write_text("file\nx.png\n")
    result = batch(bad_manifest, "-o", tmp_path / "n.parquet")
    assert result.exit_code == 2 and "needs a 'path' column" in result.output


def test_other_tasks_add_their_columns(example_pngs, tmp_path):
    thorax = next(p for p in example_pngs if "thorax" in p.name)
    out = tmp_path / "t.parquet"
    result = batch(thorax, "-o", out, "--tasks", "measure,detect")
    assert result.exit_code == 0, result.output
    (row,) = pd.read_parquet(out).to_dict("records")
    expected = Session(detector="brain-structures").analyse(str(thorax), detect="auto", measure="auto").to_row()
    assert row["plane"] == expected["plane"] and text(row["measurement"]) == expected["measurement"]
    assert row["time_measure_ms"] > 0 and row["time_detect_ms"] >= 0
    from fetalscope.models.cards import read_card  # which weights made the row's numbers, in the row itself

    head_or_ctr = read_card({"head": "hc18-head", "cardiothoracic": "focus-ctr"}[row["measurement"]])
    assert row["measurement_model"] == expected["measurement_model"] == (
        f"{head_or_ctr['name']} {head_or_ctr['version']} revision {head_or_ctr['revision']}")
    assert row["model_version"] == read_card("sononet-planes")["version"]
    result = batch(thorax, "-o", tmp_path / "quality.parquet", "--tasks", "quality")
    assert result.exit_code == 0, result.output
    (qrow,) = pd.read_parquet(tmp_path / "quality.parquet").to_dict("records")
    qexpected = Session().analyse(str(thorax), quality=True).to_row()
    assert qrow["quality_grade"] == qexpected["quality_grade"] and qrow["quality_score"] == qexpected["quality_score"]


def test_the_archive_records_its_models_and_resume_refuses_rows_of_another_setup(example_pngs, tmp_path):
    import json

    import pyarrow.parquet as pq

    from fetalscope import __version__
    from fetalscope.models.cards import read_card, resolve_bundle

    def label(name: str) -> str:
        card = read_card(name)
        return f"{card['name']} {card['version']}" + (f" revision {card['revision']}" if "revision" in card else "")

    folder = tmp_path / "in"
    folder.mkdir()
    for p in example_pngs[:2]:
        shutil.copy(p, folder / p.name)
    out = tmp_path / "archive.parquet"
    first = batch(folder, "-o", out)
    assert first.exit_code == 0, first.output
    made = json.loads(pq.read_schema(out).metadata[b"fetalscope"])
    assert made["fetalscope"] == __version__ and made["runtime"] == "auto" and made["tasks"] == ["predict"]
    assert made["models"] == {"plane": label("sononet-planes"), "brain_plane": label("sononet-brain-planes"),
                              "brain_findings": label("brain-normal-abnormal-demo")}
    assert f"models: plane {label('sononet-planes')}" in first.output
    before = out.read_bytes()
    for args, change in ((["--tasks", "measure"], "tasks predict -> predict,measure"),
                         (["--model", "sononet-planes-v1"],
                          f"plane model {label('sononet-planes')} -> {label('sononet-planes-v1')}"),
                         (["--runtime", "onnx-int8"], "runtime auto -> onnx-int8")):
        refused = batch(folder, "-o", out, "--resume", *args)
        assert refused.exit_code == 2 and change in refused.output and "--overwrite" in refused.output, refused.output
        assert out.read_bytes() == before and not out.with_name(out.name + ".parts").exists()
    head = label("hc18-head")
    assert "revision" in head  # the measurement bundles count their retrained revisions
    again = batch(folder, "-o", out, "--overwrite", "--tasks", "measure")
    assert again.exit_code == 0, again.output
    made = json.loads(pq.read_schema(out).metadata[b"fetalscope"])
    assert made["tasks"] == ["predict", "measure"] and made["models"]["head"] == head
    assert made["models"]["cardiothoracic"] == label("focus-ctr")
    table = pq.read_table(out)  # an archive written before archives said how: resumed as before
    pq.write_table(table.replace_schema_metadata({}), out)
    resumed = batch(folder, "-o", out, "--resume", "--tasks", "detect")
    assert resumed.exit_code == 0 and "2 skipped (already done)" in resumed.output, resumed.output
    # a user's own plane model retrained under the same name and version is told apart by when it was written
    mine = tmp_path / "my-planes"
    shutil.copytree(resolve_bundle("sononet-planes-v1"), mine)
    own = tmp_path / "own.parquet"
    assert batch(folder, "-o", own, "--model", mine).exit_code == 0
    card = json.loads((mine / "card.json").read_text())
    card["created"] = "2030-01-01T00:00:00+00:00"
    (mine / "card.json").write_text(json.dumps(card))
    refused = batch(folder, "-o", own, "--model", mine, "--resume")
    assert refused.exit_code == 2 and f"plane model {label(str(mine))} written again" in refused.output, \
        refused.output
