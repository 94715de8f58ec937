"""A result's ellipses and detection boxes as a Colour Softcopy Presentation State over the source image
(ultrasound is colour: the grayscale state does not apply). A viewer shows the source with the drawings on
top, without a burned-in copy; ``write_presentation_state(result, source, out_dir)`` writes it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from highdicom import color, pr
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from fetalscope import __version__
from fetalscope.errors import BadInputError
from fetalscope.interop.dicom_sr import ALGORITHM_NAME, output_path, parts
from fetalscope.interop.geometry import PIXEL_CENTRE, box_points, ellipse_points
from fetalscope.interop.source import HasRecord, frame_of, read_source, record_of

PR_SERIES_NUMBER = 9018
RGB = tuple[int, int, int]


def drawings(record: dict[str, Any]) -> dict[str, list[tuple[str, Any]]]:
    """Layer name -> [(kind, graphic data)] of what a record draws: each ellipse of its measurement (when the
    measurement was not rejected) and each detection box kept, with a label text."""
    measurement, analysis = parts(record)
    layers: dict[str, list[tuple[str, Any]]] = {}
    if measurement is not None and measurement.get("quality") != "rejected":
        for name in ("head", "heart", "thorax"):
            ellipse = measurement.get("ellipse") if name == "head" else measurement.get(name)
            if ellipse:
                layers.setdefault(name, []).append(("ellipse", ellipse))
    detections = analysis.get("detections") if analysis else None
    if not detections and isinstance(record.get("boxes"), list):
        detections = record  # a detection record itself (Session.detect)
    for box in (detections or {}).get("boxes") or []:
        layers.setdefault(str(box["label"]), []).append(("box", box))
    return layers


def _label(kind: str, name: str, data: dict[str, Any], measurement: dict[str, Any] | None) -> str:
    if kind == "box":
        score = data.get("score")
        return name if score is None else f"{name} {float(score):.2f}"
    if name == "head" and measurement and measurement.get("hc_mm") is not None:
        return f"HC {measurement['hc_mm']:.1f} mm"
    return name


def presentation_state(result: HasRecord | dict[str, Any], source: Dataset | str | Path, *,
                       frame: int | None = None, colours: Mapping[str, RGB] | None = None) -> Dataset:
    """The Colour Softcopy Presentation State of ``result`` over ``source``: one graphic layer per structure
    (head, heart, thorax) and per detected label, each drawn in ``colours[name]`` when given (the faces pass
    the colours fetalscope draws with)."""
    record = record_of(result)
    src = read_source(source, frame if frame is not None else frame_of(result))
    layers = drawings(record)
    if not layers:
        raise BadInputError(f"{record.get('image', 'this result')}: nothing to draw in a presentation state (no "
                            "accepted measurement and no detection)")
    measurement, _ = parts(record)
    annotations, graphic_layers = [], []
    for order, (name, items) in enumerate(layers.items(), start=1):
        rgb = (colours or {}).get(name)
        layer = pr.GraphicLayer(layer_name=name.upper()[:16], order=order, description=f"fetalscope {name}",
                                display_color=None if rgb is None else color.CIELabColor.from_rgb(*rgb))
        graphics, texts = [], []
        for kind, data in items:
            points = ellipse_points(data) if kind == "ellipse" else box_points(data)
            graphics.append(pr.GraphicObject(graphic_type="ELLIPSE" if kind == "ellipse" else "POLYLINE",
                                             graphic_data=points, units="PIXEL"))
            anchor = (float(points[:, 0].mean()), float(points[:, 1].min()) - 2 * PIXEL_CENTRE)
            texts.append(pr.TextObject(_label(kind, name, data, measurement), units="PIXEL",
                                       anchor_point=(anchor[0], max(anchor[1], 0.0)), anchor_point_visible=False))
        graphic_layers.append(layer)
        annotations.append(pr.GraphicAnnotation(
            referenced_images=[src.header], graphic_layer=layer, graphic_objects=graphics, text_objects=texts,
            referenced_frame_number=src.frame))
    state = pr.ColorSoftcopyPresentationState(
        referenced_images=[src.header], series_instance_uid=generate_uid(), series_number=PR_SERIES_NUMBER,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer=ALGORITHM_NAME,
        manufacturer_model_name=ALGORITHM_NAME, software_versions=__version__, device_serial_number="0",
        content_label="FETALSCOPE", content_description="fetalscope measurements and detections",
        graphic_layers=graphic_layers, graphic_annotations=annotations,
        icc_profile=getattr(src.header, "ICCProfile", None) or srgb_profile())
    # General Series Laterality (2C): the source's, else empty ("unknown"); dciodvfy cannot tell the fetal head
    # is unpaired and reports the attribute missing otherwise
    state.Laterality = getattr(src.header, "Laterality", "")
    return state


def srgb_profile() -> bytes:
    """The sRGB ICC profile highdicom ships (the source's own is used when it has one)."""
    from importlib.resources import files

    return files("highdicom").joinpath("_icc_profiles", "sRGB_v4_ICC_preference.icc").read_bytes()


def write_presentation_state(result: HasRecord | dict[str, Any], source: Dataset | str | Path, out_dir: str | Path,
                             *, frame: int | None = None, colours: Mapping[str, RGB] | None = None,
                             name: str | None = None) -> Path:
    """Write :func:`presentation_state` to ``out_dir/<name or source stem>_pr.dcm``; returns the path."""
    dataset = presentation_state(result, source, frame=frame, colours=colours)
    path = output_path(source, out_dir, "pr", name)
    dataset.save_as(path, enforce_file_format=True)
    return path
