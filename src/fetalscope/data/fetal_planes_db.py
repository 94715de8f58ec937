"""FETAL_PLANES_DB (Burgos-Artizzu et al., Sci Rep 10:10200, 2020; Zenodo 3904280; CC BY 4.0).

Layout of the download::

    <root>/FETAL_PLANES_DB_data.csv     ';'-separated; the last header is "Train " and every line
                                        ends with a space
    <root>/Images/<Image_name>.png

Columns: ``Image_name, Patient_num, Plane, Brain_plane, Operator, US_Machine, Train``. Two tasks:

- ``planes``: the six ``Plane`` classes (:data:`~fetalscope.data.labels.PLANE_CLASSES`);
- ``brain-planes``: ``Fetal brain`` rows by ``Brain_plane``
  (:data:`~fetalscope.data.labels.BRAIN_PLANE_CLASSES`); ``Other`` / ``Not A Brain`` are left out.

Only the CSV is available offline (``shared_data_dir()/fetal_planes_db``); read it with
``require_images=False``. A user's own download, or a phantom tree from
:func:`fetalscope.data.phantoms.write_phantom_dataset`, has the images too.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from fetalscope.config import shared_data_dir
from fetalscope.data.labels import BRAIN_PLANE_CLASSES, BRAIN_PLANE_EXCLUDED, PLANE_CLASSES, TASKS
from fetalscope.data.samples import LabelledSet, Sample
from fetalscope.errors import DataError

__all__ = [
    "CSV_NAME",
    "REQUIRED_COLUMNS",
    "LabelledSet",
    "Sample",
    "default_root",
    "load_fetal_planes_db",
    "read_fetal_planes_csv",
]

CSV_NAME = "FETAL_PLANES_DB_data.csv"
IMAGES_DIR = "Images"
REQUIRED_COLUMNS = ("Image_name", "Patient_num", "Plane", "Brain_plane", "Operator", "US_Machine", "Train")
BRAIN = "Fetal brain"
NOT_A_BRAIN = "Not A Brain"
_EXAMPLES = 5


def default_root() -> Path:
    """Where the offline copy of the metadata lives: ``shared_data_dir()/fetal_planes_db``."""
    return shared_data_dir() / "fetal_planes_db"


def _resolve_csv(root: str | Path | None, csv_path: str | Path | None) -> Path:
    if csv_path is not None:
        path = Path(csv_path)
    else:
        base = Path(root) if root is not None else default_root()
        path = base / CSV_NAME if base.is_dir() or base.suffix.lower() != ".csv" else base
    if not path.is_file():
        raise DataError(
            f"{path}: FETAL_PLANES_DB metadata CSV not found. Point to the folder of the Zenodo 3904280 "
            f"download (it holds {CSV_NAME} and Images/), or pass the CSV path."
        )
    return path


def read_fetal_planes_csv(path: str | Path) -> list[dict[str, str]]:
    """Rows of the CSV as dicts, header names and values stripped of surrounding spaces.

    Raises :class:`DataError` when the file is unreadable, empty or lacks required columns.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the FETAL_PLANES_DB CSV ({exc})") from exc
    reader = csv.reader(text.splitlines(), delimiter=";")
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataError(f"{path}: the CSV is empty; expected a header {';'.join(REQUIRED_COLUMNS)}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; found {header}. The file must be ';'-separated with "
            f"columns {list(REQUIRED_COLUMNS)}."
        )
    rows: list[dict[str, str]] = []
    for values in reader:
        if not values or all(not v.strip() for v in values):
            continue
        rows.append({h: (values[i].strip() if i < len(values) else "") for i, h in enumerate(header)})
    return rows


def _examples(items: list[str]) -> str:
    shown = ", ".join(items[:_EXAMPLES])
    return shown + (f", ... ({len(items) - _EXAMPLES} more)" if len(items) > _EXAMPLES else "")


def _validate(rows: list[dict[str, str]], path: Path) -> None:
    """Unknown labels, inconsistent brain rows, bad Train flags, blank ids, duplicate names."""
    unknown_planes = Counter(r["Plane"] for r in rows if r["Plane"] not in PLANE_CLASSES)
    if unknown_planes:
        raise DataError(
            f"{path}: unknown Plane label(s) {dict(unknown_planes)}; expected one of {list(PLANE_CLASSES)}. "
            "Fix the spelling in the CSV."
        )
    known_brain = set(BRAIN_PLANE_CLASSES) | set(BRAIN_PLANE_EXCLUDED)
    unknown_brain = Counter(r["Brain_plane"] for r in rows if r["Brain_plane"] not in known_brain)
    if unknown_brain:
        raise DataError(
            f"{path}: unknown Brain_plane label(s) {dict(unknown_brain)}; "
            f"expected one of {sorted(known_brain)}."
        )
    inconsistent = [
        f"{r['Image_name']} ({r['Plane']} / {r['Brain_plane']})"
        for r in rows
        if (r["Plane"] == BRAIN) == (r["Brain_plane"] == NOT_A_BRAIN)
    ]
    if inconsistent:
        raise DataError(
            f"{path}: {len(inconsistent)} row(s) whose Plane and Brain_plane disagree (a Fetal brain row "
            f"needs a brain plane, every other row '{NOT_A_BRAIN}'): {_examples(inconsistent)}"
        )
    bad_train = [f"{r['Image_name']} ({r['Train']!r})" for r in rows if r["Train"] not in ("0", "1")]
    if bad_train:
        raise DataError(
            f"{path}: Train must be 0 or 1; {len(bad_train)} row(s) are not: {_examples(bad_train)}"
        )
    blank = [r["Image_name"] or "<blank name>" for r in rows if not r["Image_name"] or not r["Patient_num"]]
    if blank:
        raise DataError(f"{path}: {len(blank)} row(s) lack Image_name or Patient_num: {_examples(blank)}")
    dupes = [name for name, n in Counter(r["Image_name"] for r in rows).items() if n > 1]
    if dupes:
        raise DataError(f"{path}: {len(dupes)} Image_name value(s) appear more than once: {_examples(dupes)}")


def load_fetal_planes_db(
    root: str | Path | None = None,
    *,
    task: str = "planes",
    csv_path: str | Path | None = None,
    images_dir: str | Path | None = None,
    require_images: bool = True,
    image_suffix: str = ".png",
) -> LabelledSet:
    """Read FETAL_PLANES_DB into a :class:`LabelledSet` for ``task`` (``planes`` | ``brain-planes``).

    ``root`` is the download folder (default: the offline metadata in shared data); ``csv_path`` and
    ``images_dir`` override its parts. Each :class:`Sample` has ``patient`` = ``Patient_num`` and
    ``meta`` = ``image_name, operator, machine, plane, brain_plane, official_train`` (bool).
    With ``require_images`` every image file must exist.
    """
    if task not in TASKS:
        raise DataError(f"unknown task {task!r} for FETAL_PLANES_DB; use one of {sorted(TASKS)}")
    classes = TASKS[task]
    path = _resolve_csv(root, csv_path)
    rows = read_fetal_planes_csv(path)
    if not rows:
        raise DataError(f"{path}: the CSV has a header but no rows")
    _validate(rows, path)
    img_dir = Path(images_dir) if images_dir is not None else path.parent / IMAGES_DIR
    samples: list[Sample] = []
    for r in rows:
        if task == "planes":
            label = classes.index(r["Plane"])
        else:
            if r["Plane"] != BRAIN or r["Brain_plane"] in BRAIN_PLANE_EXCLUDED:
                continue
            label = classes.index(r["Brain_plane"])
        samples.append(
            Sample(
                path=img_dir / f"{r['Image_name']}{image_suffix}",
                label=label,
                patient=r["Patient_num"],
                meta={
                    "image_name": r["Image_name"],
                    "operator": r["Operator"],
                    "machine": r["US_Machine"],
                    "plane": r["Plane"],
                    "brain_plane": r["Brain_plane"],
                    "official_train": r["Train"] == "1",
                },
            )
        )
    if not samples:
        raise DataError(f"{path}: no rows left for task {task!r} (classes {list(classes)})")
    if require_images:
        if not img_dir.is_dir():
            raise DataError(
                f"{img_dir}: image folder not found for {path.name}. Put the images of the Zenodo 3904280 "
                "download there, pass images_dir=, or use require_images=False to use the metadata only."
            )
        missing = [s.path.name for s in samples if not s.path.is_file()]
        if missing:
            raise DataError(
                f"{img_dir}: {len(missing)} of {len(samples)} image file(s) listed in {path.name} are "
                f"missing, e.g. {_examples(missing)}. Complete the download or pass require_images=False."
            )
    return LabelledSet(samples=samples, classes=classes, source=f"FETAL_PLANES_DB:{task}:{path}")
