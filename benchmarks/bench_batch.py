"""Speed of `fetalscope batch` on the same real images: `predict`'s loop (one process, one session), the local
engine, and the Ray engine with 1 and 2 workers; Ray's start-up cost; and a scaling estimate for a 100,000-image
archive on 8 and 64 cores from the measured per-worker throughput and the plane model's fp32 / int8 costs.

    PYTHONPATH=src python benchmarks/bench_batch.py --images 32 --out benchmarks/results/bench_batch_t2
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from fetalscope import config
from fetalscope.models.latency import bundle_latency, machine_info
from fetalscope.pipeline.batch import ray_engine
from fetalscope.pipeline.batch.run import execute, plan_batch
from fetalscope.pipeline.session import Session

ARCHIVE = 100_000
SOURCES = ("hc18/training_set", "focus_fetal_thorax/images", "fetal_planes_db_tv_alzubaidi")


def real_images(n: int) -> list[Path]:
    """``n`` real images taken in turn from the shared sets (HC18 heads, FOCUS thoraxes, FETAL_PLANES_DB brains)."""
    pools = [sorted(p for p in (config.shared_data_dir() / s).rglob("*") if p.suffix.lower() in (".png", ".jpg")
                    and "mask" not in p.name.lower() and "annotation" not in str(p).lower()) for s in SOURCES]
    pools = [p for p in pools if p]
    if not pools:
        raise SystemExit(f"no real images under {config.shared_data_dir()}")
    return [pools[i % len(pools)][i // len(pools)] for i in range(n)]


def timed_batch(images: list[Path], out: Path, **options) -> dict:
    t0 = time.perf_counter()
    summary = execute(plan_batch(images, out, overwrite=True, **options))
    seconds = time.perf_counter() - t0
    import pandas as pd

    rows = pd.read_parquet(out)
    assert len(rows) == len(images) and (rows["status"] == "ok").all()
    return {"seconds": round(seconds, 2), "images_per_s": round(len(images) / seconds, 3),
            "row_ms_median": round(float(statistics.median(rows["time_row_ms"])), 1),
            "plane_ms_median": round(float(statistics.median(rows["time_plane_ms"])), 1),
            "workers_seen": int(rows["worker"].nunique()), "ok": summary.by_status.get("ok", 0),
            "planes": dict(rows["plane"].value_counts())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_batch"))
    args = parser.parse_args()
    images = real_images(args.images)
    n = len(images)
    result: dict = {"machine": machine_info(), "images": n, "sources": list(SOURCES), "runs": {}}
    work = Path(tempfile.mkdtemp(prefix="bench_batch_"))

    t0 = time.perf_counter()  # `fetalscope predict`: one session, Session.analyse per file
    session = Session()
    session.analyse(images[0])
    load = time.perf_counter() - t0
    t1 = time.perf_counter()
    for f in images:
        session.analyse(f, name=str(f))
    loop = time.perf_counter() - t1
    result["runs"]["predict_one_process"] = {"seconds": round(load + loop, 2), "model_load_s": round(load, 2),
                                             "images_per_s": round(n / (load + loop), 3),
                                             "steady_images_per_s": round(n / loop, 3)}
    del session
    result["runs"]["batch_local"] = timed_batch(images, work / "local.parquet")

    t0 = time.perf_counter()
    ray_engine.connect(None)
    result["ray_start_s"] = round(time.perf_counter() - t0, 2)
    result["ray_cluster"] = ray_engine.describe_cluster()
    try:
        for workers in (1, 2):
            result["runs"][f"batch_ray_{workers}w"] = timed_batch(images, work / f"ray{workers}.parquet",
                                                                  engine="ray", workers=workers)
    finally:
        ray_engine.shutdown()

    worker_run = result["runs"]["batch_ray_1w"]  # one Ray worker on one core: the per-worker throughput measured
    lat = bundle_latency("sononet-planes", images[:8], threads=1, runs=20, int8=True)["results"]
    fp32_ms = lat["onnxruntime"]["batch1_p50_ms"]
    int8_ms = lat["onnxruntime_int8"]["batch1_p50_ms"]
    worker_row_ms = worker_run["row_ms_median"]
    per_worker = 1000.0 / worker_row_ms  # one worker, one core, steady state
    int8_row_ms = worker_row_ms - fp32_ms + int8_ms
    result["plane_model_ms"] = {"onnx_fp32_p50": fp32_ms, "onnx_int8_p50": int8_ms}
    estimate = {}
    for cores in (8, 64):
        for name, row_ms in (("fp32", worker_row_ms), ("int8", int8_row_ms)):
            hours = ARCHIVE * row_ms / 1000 / cores / 3600
            estimate[f"{cores}_cores_{name}"] = {"row_ms": round(row_ms, 1), "hours": round(hours, 2)}
    result["estimate_100k"] = {"per_worker_images_per_s": round(per_worker, 2), "by_setup": estimate,
                               "assumes": "one worker per core, the median row time of one Ray worker (measured), "
                                          "no I/O limit; plus the Ray start and one model load per worker"}
    base = result["runs"]["predict_one_process"]["images_per_s"]
    result["ratios_vs_predict"] = {k: round(v["images_per_s"] / base, 2) for k, v in result["runs"].items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str))
    machine = ", ".join(f"{k} {v}" for k, v in result["machine"].items()) if isinstance(result["machine"], dict) \
        else str(result["machine"])
    lines = [f"# bench_batch: {n} real images ({machine})", "",
             "| run | seconds | images/s | x predict | median row ms | workers seen |", "|---|---|---|---|---|---|"]
    for k, v in result["runs"].items():
        lines.append(f"| {k} | {v['seconds']} | {v['images_per_s']} | {result['ratios_vs_predict'][k]} | "
                     f"{v.get('row_ms_median', '')} | {v.get('workers_seen', 1)} |")
    lines += ["", f"Ray start (local cluster, {result['ray_cluster']}): {result['ray_start_s']} s; the Ray runs "
              "also include each actor's model load.",
              f"Plane model alone (ONNX, batch 1, 1 thread): fp32 {fp32_ms:.1f} ms, int8 {int8_ms:.1f} ms.", "",
              f"100,000 images (per worker {per_worker:.2f} images/s, one worker per core):"]
    for k, v in estimate.items():
        lines.append(f"- {k}: {v['hours']} h (row {v['row_ms']} ms)")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
