"""How ``fetalscope measure`` routes real images, measured through the real CLI (a subprocess per call, as a
user runs it); ``scripts/measure_routing.py`` prints and saves it.

- HC18 validation heads (the ``hc18-head`` bundle's ``splits.json``) under ``--what auto`` with their pixel
  sizes: the share measured as a head, which evidence chose the route, the HC mean absolute difference by
  head size, the heads missed and why; and the same heads forced as ``--what cardiothoracic`` (should be
  rejected).
- FOCUS validation thorax images (``focus-ctr``'s ``splits.json``) under ``auto`` (should give the CTR, never
  a head) and forced as ``--what head`` (should be rejected).
- FETAL_PLANES_DB trans-ventricular brains (another hospital's heads) under ``auto``.
- Colour photographs (scikit-image's sample images) under ``auto`` (nothing) and forced as ``head``
  (rejected).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from fetalscope.config import bundled_models_dir, shared_data_dir
from fetalscope.train.segmenter.recipes import read_split

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
SIZE_BINS = ((0.0, 100.0, "< 100 mm"), (100.0, 200.0, "100-200 mm"), (200.0, float("inf"), ">= 200 mm"))


def run_cli(paths: list[Path], *args: str, pixel_sizes: dict[Path, float] | None = None) -> list[dict[str, Any]]:
    """``fetalscope measure PATHS... ARGS`` in a subprocess; its JSON records (``--pixel-sizes`` from
    ``pixel_sizes`` when given)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "records.json"
        cmd = [sys.executable, "-m", "fetalscope", "measure", *map(str, paths), *args, "--output", str(out)]
        if pixel_sizes:
            table = Path(tmp) / "pixel_sizes.csv"
            with table.open("w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(["path", "pixel_size_mm"])
                w.writerows([str(p), v] for p, v in pixel_sizes.items())
            cmd += ["--pixel-sizes", str(table)]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        records = json.loads(out.read_text(encoding="utf-8"))
    return records if isinstance(records, list) else [records]


def _hc18_references() -> dict[str, tuple[float, float]]:
    """HC18 file name -> (pixel size mm, reference HC mm)."""
    table = shared_data_dir() / "hc18" / "training_set_pixel_size_and_HC.csv"
    with table.open(newline="", encoding="utf-8") as fh:
        return {r["filename"]: (float(r["pixel size(mm)"]), float(r["head circumference (mm)"]))
                for r in csv.DictReader(fh)}


def _split_paths(bundle: str) -> list[Path]:
    return [shared_data_dir() / rel for rel in read_split(bundled_models_dir() / bundle, "validation")]


def _routes(records: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        key = f"{(r.get('route') or {}).get('by')} -> {r.get('measurement')}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def head_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """HC mean absolute difference and bias by reference head size (rows: ``hc_ref_mm``, ``hc_mm``)."""
    out = []
    for lo, hi, label in SIZE_BINS:
        d = np.array([r["hc_mm"] - r["hc_ref_mm"] for r in rows if lo <= r["hc_ref_mm"] < hi])
        out.append({"size": label, "n": int(d.size), "mad_mm": float(np.abs(d).mean()) if d.size else None,
                    "bias_mm": float(d.mean()) if d.size else None})
    d = np.array([r["hc_mm"] - r["hc_ref_mm"] for r in rows])
    out.append({"size": "all", "n": int(d.size), "mad_mm": float(np.abs(d).mean()) if d.size else None,
                "bias_mm": float(d.mean()) if d.size else None})
    return out


def hc18_study(paths: list[Path], forced: bool = True) -> dict[str, Any]:
    """HC18 heads under ``auto`` (and, with ``forced``, the same heads forced as a CTR)."""
    refs = _hc18_references()
    sizes = {p: refs[p.name][0] for p in paths}
    auto = run_cli(paths, "--what", "auto", pixel_sizes=sizes)
    rows, missed = [], []
    for p, r in zip(paths, auto, strict=True):
        if r.get("measurement") == "head" and r.get("hc_mm") is not None:
            rows.append({"image": p.name, "hc_mm": r["hc_mm"], "hc_ref_mm": refs[p.name][1]})
        else:
            missed.append({"image": p.name, "hc_ref_mm": refs[p.name][1], "measurement": r.get("measurement"),
                           "quality": r.get("quality"), "plane": r.get("plane"),
                           "plane_probability": r.get("plane_probability"), "flags": r.get("flags")})
    out = {"n": len(paths), "measured": len(rows), "measured_share": len(rows) / len(paths),
           "routes": _routes(auto), "by_size": head_table(rows), "missed": missed}
    if forced:
        as_ctr = run_cli(paths, "--what", "cardiothoracic")
        out["forced_ctr_rejected"] = sum(r.get("quality") == "rejected" for r in as_ctr)
        out["forced_ctr_ok"] = [Path(r["image"]).name for r in as_ctr if r.get("quality") == "ok"]
    return out


def thorax_study(paths: list[Path], forced: bool = True) -> dict[str, Any]:
    """FOCUS thorax images under ``auto`` (and, with ``forced``, the same images forced as a head)."""
    auto = run_cli(paths, "--what", "auto")
    out = {"n": len(paths), "routes": _routes(auto),
           "ctr": sum(r.get("measurement") == "cardiothoracic" for r in auto),
           "ctr_ok": sum(r.get("measurement") == "cardiothoracic" and r.get("quality") == "ok" for r in auto),
           "head": [Path(r["image"]).name for r in auto if r.get("measurement") == "head"]}
    if forced:
        as_head = run_cli(paths, "--what", "head", "--pixel-size", "0.1")
        out["forced_head_rejected"] = sum(r.get("quality") == "rejected" for r in as_head)
        out["forced_head_ok"] = [Path(r["image"]).name for r in as_head if r.get("quality") == "ok"]
    return out


def brain_study(paths: list[Path]) -> dict[str, Any]:
    auto = run_cli(paths, "--what", "auto", "--pixel-size", "0.1")
    return {"n": len(paths), "routes": _routes(auto), "head": sum(r.get("measurement") == "head" for r in auto)}


def photo_study(folder: Path) -> dict[str, Any]:
    from PIL import Image
    from skimage import data

    paths = []
    for name in PHOTOS:
        paths.append(folder / f"{name}.png")
        pixels = getattr(data, name)()
        Image.fromarray(pixels if pixels.ndim == 3 else np.stack([pixels] * 3, -1)).convert("RGB").save(paths[-1])
    auto = run_cli(paths, "--what", "auto", "--pixel-size", "0.1")
    forced = run_cli(paths, "--what", "head", "--pixel-size", "0.1")
    return {"n": len(paths), "routes": _routes(auto), "measured": sum(r.get("measurement") is not None for r in auto),
            "forced_head_ok": [Path(r["image"]).name for r in forced if r.get("quality") == "ok"]}


def measure_routing_study(max_images: int | None = None, every_image: bool = False) -> dict[str, Any]:
    """Every part of the study (see the module docstring); ``max_images`` caps each real set (a quick run);
    ``every_image`` adds every HC18 and FOCUS image under ``auto`` (most of them trained the models: the
    plane model and the segmentations are surer of them than of unseen images, so this counts the rare
    routing failures, it does not estimate their rate)."""
    t0 = time.perf_counter()
    heads = _split_paths("hc18-head")[:max_images]
    thoraces = _split_paths("focus-ctr")[:max_images]
    tv = sorted((shared_data_dir() / "fetal_planes_db_tv_alzubaidi" / "images").glob("*.png"))[:max_images]
    with tempfile.TemporaryDirectory() as tmp:
        photos = photo_study(Path(tmp))
    result = {"hc18_validation": hc18_study(heads), "focus_validation": thorax_study(thoraces),
              "fpdb_tv_brains": brain_study(tv), "colour_photos": photos}
    if every_image:
        every_head = sorted((shared_data_dir() / "hc18" / "training_set").glob("*HC.png"))[:max_images]
        every_thorax = sorted((shared_data_dir() / "focus_fetal_thorax" / "images").glob("*.png"))[:max_images]
        result["hc18_all"] = hc18_study(every_head, forced=False)
        result["focus_all"] = thorax_study(every_thorax, forced=False)
    result["minutes"] = round((time.perf_counter() - t0) / 60, 1)
    return result


def routing_markdown(result: dict[str, Any]) -> str:
    """The study as Markdown."""
    h, f, b, p = (result[k] for k in ("hc18_validation", "focus_validation", "fpdb_tv_brains", "colour_photos"))
    lines = ["# Measurement routing through `fetalscope measure`", "",
             f"HC18 validation heads measured under `--what auto`: **{h['measured']}/{h['n']} "
             f"({100 * h['measured_share']:.1f}%)**; routes: {h['routes']}.", "",
             "| reference HC | heads | HC mean absolute difference (mm) | bias (mm) |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['size']} | {r['n']} | {r['mad_mm']:.2f} | {r['bias_mm']:+.2f} |" if r["n"] else
              f"| {r['size']} | 0 | - | - |" for r in h["by_size"]]
    lines += ["", "Missed heads: " + (", ".join(f"{m['image']} ({m['plane']} {m['plane_probability']})"
                                               for m in h["missed"]) or "none") + ".",
              f"The same heads forced as `--what cardiothoracic`: {h['forced_ctr_rejected']}/{h['n']} rejected.", "",
              f"FOCUS validation thorax images under `auto`: {f['ctr']}/{f['n']} routed to the CTR ({f['ctr_ok']} "
              f"passed its gate), {len(f['head'])} to head; routes: {f['routes']}. Forced as `--what head`: "
              f"{f['forced_head_rejected']}/{f['n']} rejected.", "",
              f"FETAL_PLANES_DB trans-ventricular brains under `auto`: {b['head']}/{b['n']} measured as a head; "
              f"routes: {b['routes']}.", "",
              f"Colour photographs under `auto`: {p['measured']}/{p['n']} measured; forced as head, "
              f"{len(p['forced_head_ok'])} passed as ok.", ""]
    if "hc18_all" in result:
        a, t = result["hc18_all"], result["focus_all"]
        lines += ["## Every HC18 and FOCUS image", "",
                  "Most of these images trained the plane model or the segmentations, which are surer of them than "
                  "of unseen ones: this lists the rare routing failures, it does not estimate how often they happen.",
                  "", f"Every HC18 head under `auto`: **{a['measured']}/{a['n']}** measured; routes: {a['routes']}. "
                  "Missed: " + (", ".join(f"{m['image']} ({m['plane']} {m['plane_probability']})"
                                          for m in a["missed"]) or "none") + ".", "",
                  f"Every FOCUS thorax image under `auto`: {t['ctr']}/{t['n']} routed to the CTR, {len(t['head'])} to "
                  f"head; routes: {t['routes']}.", ""]
    lines.append(f"Run time: {result['minutes']} min.")
    return "\n".join(lines) + "\n"
