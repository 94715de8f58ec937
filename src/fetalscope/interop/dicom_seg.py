"""A measurement's regions as a DICOM Segmentation (binary) of the source image: one segment per fitted
ellipse (head; heart and thorax), the region the reported numbers were computed from, rasterised at the
source's size (and on the measured frame of a cine loop). ``write_segmentation(result, source, out_dir)``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from highdicom import AlgorithmIdentificationSequence, seg
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from fetalscope import __version__
from fetalscope.errors import BadInputError, UnsupportedError
from fetalscope.interop import vocabulary as v
from fetalscope.interop.dicom_sr import ALGORITHM_NAME, model_label, output_path, parts
from fetalscope.interop.source import HasRecord, frame_of, read_source, record_of

SEG_SERIES_NUMBER = 9019


def ellipse_mask(ellipse: dict[str, Any], rows: int, columns: int) -> np.ndarray:
    """Pixels whose centres lie inside ``ellipse`` {cx, cy, a, b, angle_deg} (fetalscope pixel coordinates)."""
    y, x = np.mgrid[0:rows, 0:columns].astype(np.float64)
    angle = math.radians(float(ellipse["angle_deg"]))
    dx, dy = x - float(ellipse["cx"]), y - float(ellipse["cy"])
    u = dx * math.cos(angle) + dy * math.sin(angle)
    w = -dx * math.sin(angle) + dy * math.cos(angle)
    return (u / float(ellipse["a"])) ** 2 + (w / float(ellipse["b"])) ** 2 <= 1.0


def regions(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Structure -> ellipse of an accepted measurement record."""
    measurement, _ = parts(record)
    if measurement is None or measurement.get("quality") == "rejected":
        return {}
    found = {"head": measurement.get("ellipse")} if measurement.get("measurement") == "head" else \
        {name: measurement.get(name) for name in ("heart", "thorax")}
    return {name: e for name, e in found.items() if e}


def segmentation(result: HasRecord | dict[str, Any], source: Dataset | str | Path, *,
                 frame: int | None = None) -> Dataset:
    """The binary DICOM Segmentation of ``result``'s ellipses over ``source`` (which must hold its pixels'
    description: rows, columns, samples, photometric interpretation)."""
    record = record_of(result)
    src = read_source(source, frame if frame is not None else frame_of(result))
    found = regions(record)
    if not found:
        raise BadInputError(f"{record.get('image', 'this result')}: nothing to segment (no accepted measurement)")
    measurement, _ = parts(record)
    model = (measurement or {}).get("model") or {}
    algorithm = AlgorithmIdentificationSequence(
        name=ALGORITHM_NAME, family=codes.cid7162.ArtificialIntelligence, version=__version__,
        parameters={"model": model_label(model)})
    descriptions, planes = [], []
    for number, (name, ellipse) in enumerate(found.items(), start=1):
        descriptions.append(seg.SegmentDescription(
            segment_number=number, segment_label=f"{name} (fitted ellipse)",
            segmented_property_category=codes.SCT.AnatomicalStructure, segmented_property_type=v.STRUCTURES[name],
            algorithm_type=seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm,
            tracking_uid=generate_uid(), tracking_id=f"{name} ellipse"))
        planes.append(ellipse_mask(ellipse, src.rows, src.columns))
    masks = np.stack(planes, axis=-1)[None].astype(np.uint8)  # 1 x rows x columns x segments
    if src.frame is not None:
        raise UnsupportedError(f"{record.get('image', 'this result')}: a DICOM Segmentation of one frame of a cine "
                               "loop without a frame of reference is not supported (highdicom segments such "
                               "images only when single-frame); the SR and presentation state reference the frame")
    dataset = seg.Segmentation(
        source_images=[src.header], pixel_array=masks, segmentation_type=seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=generate_uid(), series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer=ALGORITHM_NAME,
        manufacturer_model_name=ALGORITHM_NAME, software_versions=__version__, device_serial_number="0",
        content_label="FETALSCOPE", content_description="fetalscope measured regions", omit_empty_frames=True,
        series_description="fetalscope measured regions (segmentation)")
    # General Image Patient Orientation (2C): the source's, else empty ("unknown"; an ultrasound image has none)
    dataset.PatientOrientation = getattr(src.header, "PatientOrientation", "")
    return dataset


def write_segmentation(result: HasRecord | dict[str, Any], source: Dataset | str | Path, out_dir: str | Path, *,
                       frame: int | None = None, name: str | None = None) -> Path:
    """Write :func:`segmentation` to ``out_dir/<name or source stem>_seg.dcm``; returns the path."""
    dataset = segmentation(result, source, frame=frame)
    path = output_path(source, out_dir, "seg", name)
    dataset.save_as(path, enforce_file_format=True)
    return path
