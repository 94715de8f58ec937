"""What the SonoNet bundle recipes share: the fixed calibration/test split of the real images, the data
licences and citations the cards carry, and small counting helpers."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fetalscope.data.real_sets import RealImage

SPLIT_SALT = "fetalscope/sononet-planes/v1"
CALIBRATION_SOURCES = ("HC18", "FPDB-TV", "FPDB-brain-rf", "FOCUS")  # web-abnormal: evaluation only

CITATIONS = [
    "Baumgartner CF, Kamnitsas K, Matthew J, et al. SonoNet: real-time detection and localisation of fetal "
    "standard scan planes in freehand ultrasound. IEEE Trans Med Imaging 36(11):2204-2215 (2017); "
    "arXiv:1612.05601. Weights: github.com/baumgach/SonoNet-weights (Apache-2.0).",
    "van den Heuvel TLA, de Bruijn D, de Korte CL, van Ginneken B. Automated measurement of fetal head "
    "circumference using 2D ultrasound images. PLoS ONE 13(8):e0200412 (2018). HC18 data, CC BY 4.0.",
    "Alzubaidi M, et al. Large-scale annotation dataset for fetal head biometry in ultrasound images. "
    "Data in Brief 51:109708 (2023). Trans-ventricular images, CC BY 4.0.",
    "Burgos-Artizzu XP, Coronado-Gutierrez D, Valenzuela-Alcaraz B, et al. Evaluation of deep convolutional "
    "neural networks for automatic classification of common maternal fetal ultrasound planes. Sci Rep "
    "10:10200 (2020). FETAL_PLANES_DB (and the FOCUS thorax images drawn from it), CC BY 4.0.",
]
DATA_LICENCES = {
    "HC18": "CC BY 4.0 (van den Heuvel et al. 2018); Radboud UMC, Nijmegen, the Netherlands",
    "FPDB-TV": "CC BY 4.0 (Alzubaidi et al. 2023; images from FETAL_PLANES_DB, Burgos-Artizzu et al. 2020)",
    "FPDB-brain-rf": "CC BY 4.0 (FETAL_PLANES_DB brain images, Burgos-Artizzu et al. 2020, as 256x256 JPG "
    "in Roboflow project fetal-abnormality-object-detection v1; sub-plane from the official "
    "FETAL_PLANES_DB CSV)",
    "FOCUS": "CC BY 4.0 (FETAL_PLANES_DB Fetal thorax images, Burgos-Artizzu et al. 2020; FOCUS annotations, "
    "MIT, lukaznj/fetal-ctr-detection)",
    "web-abnormal-rf": "CC BY 4.0 (Roboflow project fetal-abnormality-object-detection v1; abnormal fetal "
    "brains of unknown web origin)",
}


def split_of(group: str) -> str:
    """``calibration`` or ``test``: a fixed hash of the group, so a patient never sits in both."""
    digest = hashlib.sha256(f"{SPLIT_SALT}:{group}".encode()).digest()
    return "calibration" if digest[0] % 2 == 0 else "test"


def image_list_sha256(images: list[RealImage]) -> str:
    h = hashlib.sha256()
    for im in images:
        h.update(
            f"{im.source}|{im.path.name}|{im.path.stat().st_size}|{im.plane}|{im.brain_plane}\n".encode()
        )
    return h.hexdigest()


def calibration_and_test(images: Sequence[RealImage]) -> tuple[list[RealImage], list[RealImage]]:
    """The sononet-planes calibration and test images: calibration = the :data:`CALIBRATION_SOURCES` images
    whose group hashes to ``calibration`` (:func:`split_of`), test = all others. Raises ``ValueError`` when
    a group sits in both."""
    cal = [im for im in images if im.source in CALIBRATION_SOURCES and split_of(im.group) == "calibration"]
    in_cal = set(cal)
    test = [im for im in images if im not in in_cal]
    overlap = {im.group for im in cal} & {im.group for im in test}
    if overlap:
        raise ValueError(f"calibration and test share groups: {sorted(overlap)[:5]}")
    return cal, test


def count_table(keys: list[tuple[str, ...]]) -> dict[str, int]:
    return {" / ".join(k): n for k, n in sorted(Counter(keys).items())}


def frac(correct: int, n: int) -> dict[str, Any]:
    return {"correct": int(correct), "n": int(n), "accuracy": (correct / n) if n else None}


def readable(folder: Path) -> None:
    """Bundle files readable by everyone (safetensors writes its file owner-only)."""
    for path in folder.iterdir():
        if path.is_file():
            path.chmod(0o644)

