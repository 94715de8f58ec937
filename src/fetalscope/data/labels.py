"""Label spaces used across fetalscope (FETAL_PLANES_DB, Burgos-Artizzu et al., Sci Rep 2020)."""

from __future__ import annotations

PLANE_CLASSES: tuple[str, ...] = (
    "Fetal abdomen",
    "Fetal brain",
    "Fetal femur",
    "Fetal thorax",
    "Maternal cervix",
    "Other",
)

BRAIN_PLANE_CLASSES: tuple[str, ...] = (
    "Trans-thalamic",
    "Trans-cerebellum",
    "Trans-ventricular",
)

# Brain_plane values in FETAL_PLANES_DB that are not a brain sub-plane class
BRAIN_PLANE_EXCLUDED: tuple[str, ...] = ("Other", "Not A Brain")

TASKS: dict[str, tuple[str, ...]] = {
    "planes": PLANE_CLASSES,
    "brain-planes": BRAIN_PLANE_CLASSES,
}
