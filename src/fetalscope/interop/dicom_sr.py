"""A fetalscope result as a DICOM Structured Report, TID 1500 Measurement Report, that files with the source
study (IHE AI Results).

``measurement_report(result, source)`` builds the SR dataset, ``write_sr(result, source, out_dir)`` writes it.
What it holds, each item only when the result has it:

- a planar ROI group per fitted ellipse (head; heart and thorax), the ellipse as SCOORD ELLIPSE on the
  source image (SOP class, instance and frame); the head group carries HC, BPD, OFD (LOINC 11984-2, 11820-8,
  11851-3, mm) and the gestational age (18185-9, wk) with its equation as the method (11932-1,
  Hadlock 1984);
- a group with the cardiothoracic ratios (LOINC 59074-5 circumference, 59076-0 area, UCUM ``{ratio}``);
- a group with the plane classification (Image View, with its probability) and, when the acquisition
  checklist ran, its grade (Image Quality Rating), as qualitative evaluations; this group alone is the
  classification-only SR of ``fetalscope predict``;
- Algorithm Identification in every group: ``fetalscope``, its version, the model bundle's name and version.

Patient, study and accession attributes are copied from the source; the SR gets new series and instance
UIDs. Codes live in :mod:`fetalscope.interop.vocabulary`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from highdicom import sr
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from fetalscope import __version__
from fetalscope.errors import BadInputError
from fetalscope.interop import vocabulary as v
from fetalscope.interop.geometry import ellipse_points
from fetalscope.interop.source import HasRecord, Source, frame_of, read_source, record_of

ALGORITHM_NAME = "fetalscope"
# one UID for the fetalscope software as an observer device (the same on every machine and run)
DEVICE_UID = generate_uid(entropy_srcs=["fetalscope", "observer device"])
SR_SERIES_NUMBER = 9017
PRIVATE_SCHEME_ITEM = CodingSchemeIdentificationItem(
    designator=v.PRIVATE_SCHEME, name="fetalscope model labels", responsible_organization="fetalscope")


def parts(record: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(measurement record or None, the analysis fields) of a record: an ``Analysis`` record carries its
    measurement under ``measurement``; a measurement record (``Session.measure``) is one itself."""
    if record.get("measurement") in ("head", "cardiothoracic"):
        return record, {}
    measurement = record.get("measurement")
    return (measurement if isinstance(measurement, dict) else None), record


def model_label(model: dict[str, Any] | None) -> str:
    """A model as stored results name it (``model``: a record's ``{"id", "version", "revision"?}``): its name,
    version and, where its card counts retrained revisions of one version, that revision, so that a stored result
    can be traced to the weights that made it (e.g. ``hc18-head 0.1.0 revision 5``)."""
    model = model or {}
    label = f"{model.get('id', 'unknown')} {model.get('version', '')}".strip()
    return label if model.get("revision") is None else f"{label} revision {model['revision']}"


def algorithm(model: dict[str, Any] | None) -> sr.AlgorithmIdentification:
    """fetalscope and its version; the model bundle (:func:`model_label`) as the parameter."""
    return sr.AlgorithmIdentification(name=ALGORITHM_NAME, version=__version__,
                                      parameters=[f"model {model_label(model)}"])


def _region(ellipse: dict[str, Any], source: Source) -> sr.ImageRegion:
    frames = None if source.frame is None else [source.frame]
    return sr.ImageRegion(graphic_type=sr.GraphicTypeValues.ELLIPSE, graphic_data=ellipse_points(ellipse),
                          source_image=sr.SourceImageForRegion.from_source_image(source.header, frames))


def _tracking(label: str) -> sr.TrackingIdentifier:
    return sr.TrackingIdentifier(uid=generate_uid(), identifier=label)


def head_groups(m: dict[str, Any], source: Source) -> list[Any]:
    """The head ellipse with HC, BPD, OFD and GA (those the record has)."""
    if not m.get("ellipse") or m.get("quality") == "rejected":
        return []
    algo = algorithm(m.get("model"))
    items = [sr.Measurement(name=concept, value=float(m[key]), unit=unit, algorithm_id=algo)
             for key, concept, unit in v.HEAD_ITEMS if m.get(key) is not None]
    if m.get("ga_weeks") is not None:
        items.append(sr.Measurement(name=v.GESTATIONAL_AGE, value=float(m["ga_weeks"]), unit=v.WEEK,
                                    method=v.GA_FORMULAS.get(m.get("ga_formula") or ""), algorithm_id=algo))
    return [sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=_tracking("head ellipse"), referenced_region=_region(m["ellipse"], source),
        finding_type=v.HEAD, algorithm_id=algo, measurements=items or None)]


def cardiothoracic_groups(m: dict[str, Any], source: Source) -> list[Any]:
    """The heart and thorax ellipses, then the ratios (when the quality gate passed)."""
    if m.get("quality") == "rejected" or not m.get("ctr"):
        return []
    algo = algorithm(m.get("model"))
    groups: list[Any] = [
        sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=_tracking(f"{name} ellipse"), referenced_region=_region(m[name], source),
            finding_type=v.STRUCTURES[name], algorithm_id=algo)
        for name in ("heart", "thorax") if m.get(name)]
    ratios = [sr.Measurement(name=concept, value=float(m["ctr"][key]), unit=v.RATIO, algorithm_id=algo)
              for key, concept in v.CTR_ITEMS if m["ctr"].get(key) is not None]
    frames = None if source.frame is None else [source.frame]
    groups.append(sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=_tracking("cardiothoracic ratio"), finding_type=v.HEART, algorithm_id=algo,
        measurements=ratios,
        source_images=[sr.SourceImageForMeasurementGroup.from_source_image(source.header, frames)]))
    return groups


def classification_groups(record: dict[str, Any], source: Source) -> list[Any]:
    """The plane (Image View, with its probability) and the acquisition grade, when the record has them."""
    evaluations, measurements = [], []
    if record.get("plane"):
        evaluations.append(sr.QualitativeEvaluation(v.IMAGE_VIEW, v.private_code(record["plane"])))
        if record.get("plane_probability") is not None:
            measurements.append(sr.Measurement(name=v.PROBABILITY, value=float(record["plane_probability"]),
                                               unit=v.NO_UNITS, algorithm_id=algorithm(record.get("model"))))
    quality = record.get("quality")
    if isinstance(quality, dict) and quality.get("grade"):
        evaluations.append(sr.QualitativeEvaluation(v.IMAGE_QUALITY_RATING, v.private_code(str(quality["grade"]))))
    if not evaluations:
        return []
    frames = None if source.frame is None else [source.frame]
    return [sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=_tracking("plane classification"), algorithm_id=algorithm(record.get("model")),
        measurements=measurements or None, qualitative_evaluations=evaluations,
        source_images=[sr.SourceImageForMeasurementGroup.from_source_image(source.header, frames)])]


def measurement_report(result: HasRecord | dict[str, Any], source: Dataset | str | Path, *,
                       frame: int | None = None) -> Dataset:
    """The TID 1500 Comprehensive SR of ``result`` (an ``Analysis``, its record, or a measurement record) made on
    ``source``. ``frame`` (0-based) is the frame of a multi-frame source the result was made on; by default the
    frame the result's image carries, else the loader's choice (the middle frame)."""
    record = record_of(result)
    src = read_source(source, frame if frame is not None else frame_of(result))
    measurement, analysis = parts(record)
    groups: list[Any] = []
    if measurement is not None:
        groups += (head_groups if measurement.get("measurement") == "head" else cardiothoracic_groups)(measurement, src)
    groups += classification_groups(analysis, src)
    if not groups:
        raise BadInputError(f"{record.get('image', 'this result')}: nothing to report in an SR (no accepted "
                            "measurement and no plane classification)")
    device = sr.DeviceObserverIdentifyingAttributes(uid=DEVICE_UID, name=ALGORITHM_NAME,
                                                    manufacturer_name=ALGORITHM_NAME, model_name=__version__)
    context = sr.ObservationContext(
        observer_device_context=sr.ObserverContext(observer_type=codes.DCM.Device,
                                                   observer_identifying_attributes=device),
        subject_context=sr.SubjectContext(subject_class=codes.DCM.Fetus,
                                          subject_class_specific_context=sr.SubjectContextFetus(subject_id="1")))
    report = sr.MeasurementReport(observation_context=context, procedure_reported=v.OBSTETRIC_US_SCAN,
                                  imaging_measurements=groups)
    return sr.ComprehensiveSR(
        evidence=[src.header], content=report[0], series_instance_uid=generate_uid(),
        series_number=SR_SERIES_NUMBER, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer=ALGORITHM_NAME, manufacturer_model_name=ALGORITHM_NAME, software_versions=__version__,
        series_description="fetalscope measurements" if measurement else "fetalscope classification",
        coding_schemes=[PRIVATE_SCHEME_ITEM], is_complete=True)


def output_path(source: Dataset | str | Path, out_dir: str | Path, suffix: str, name: str | None = None) -> Path:
    """``out_dir/<name or source stem>_<suffix>.dcm`` (the SOP instance UID when the source has no file name)."""
    file = source if not isinstance(source, Dataset) else getattr(source, "filename", None)
    stem = name or (Path(str(file)).stem if file else str(source.SOPInstanceUID))  # type: ignore[union-attr]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out / f"{stem}_{suffix}.dcm"


def write_sr(result: HasRecord | dict[str, Any], source: Dataset | str | Path, out_dir: str | Path, *,
             frame: int | None = None, name: str | None = None) -> Path:
    """Write :func:`measurement_report` of ``result`` to ``out_dir/<name or source stem>_sr.dcm``; returns the
    path."""
    dataset = measurement_report(result, source, frame=frame)
    path = output_path(source, out_dir, "sr", name)
    dataset.save_as(path, enforce_file_format=True)
    return path
