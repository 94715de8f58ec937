"""A fetalscope result as FHIR (R4B, which EHRs speaking R4 read): a ``collection`` Bundle holding a
``DiagnosticReport`` and one ``Observation`` per value (LOINC codes, UCUM units), the image study referenced
by its DICOM Study Instance UID when the input was DICOM. Built as plain JSON and validated by
``fhir.resources`` before it is returned. ``write_fhir(result, out_dir, source=...)`` writes it."""

from __future__ import annotations

import datetime
import json
import uuid
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from fetalscope import __version__
from fetalscope.errors import BadInputError
from fetalscope.interop import vocabulary as v
from fetalscope.interop.dicom_sr import model_label, parts
from fetalscope.interop.source import HasRecord, Source, read_source, record_of

SYSTEMS = {"LN": "http://loinc.org", "UCUM": "http://unitsofmeasure.org", "SCT": "http://snomed.info/sct",
           "DCM": "http://dicom.nema.org/resources/ontology/DCM", v.PRIVATE_SCHEME: "urn:fetalscope:label"}
REPORT_CODE = v.OBSTETRIC_GYN_US_REPORT
IMAGING_CATEGORY = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                "code": "imaging", "display": "Imaging"}]}


def coding(code: Code) -> dict[str, Any]:
    return {"system": SYSTEMS[code.scheme_designator], "code": code.value, "display": code.meaning}


def quantity(value: float, unit: Code) -> dict[str, Any]:
    return {"value": value, "unit": unit.meaning, "system": SYSTEMS["UCUM"], "code": unit.value}


def observations(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Observation resources (without subject and references) of each value a record holds."""
    measurement, analysis = parts(record)
    out: list[dict[str, Any]] = []

    def add(code: Code, value: dict[str, Any], **extra: Any) -> None:
        out.append({"resourceType": "Observation", "status": "preliminary", "category": [IMAGING_CATEGORY],
                    "code": {"coding": [coding(code)], "text": code.meaning}, **value, **extra})

    if measurement is not None and measurement.get("quality") != "rejected":
        if measurement.get("measurement") == "head":
            for key, code, unit in v.HEAD_ITEMS:
                if measurement.get(key) is not None:
                    add(code, {"valueQuantity": quantity(float(measurement[key]), unit)},
                        bodySite={"coding": [coding(v.HEAD)]})
            if measurement.get("ga_weeks") is not None:
                formula = v.GA_FORMULAS.get(measurement.get("ga_formula") or "")
                add(v.GESTATIONAL_AGE, {"valueQuantity": quantity(float(measurement["ga_weeks"]), v.WEEK)},
                    **({"method": {"coding": [coding(formula)], "text": formula.meaning}} if formula else {}))
        for key, code in v.CTR_ITEMS:
            value = (measurement.get("ctr") or {}).get(key)
            if value is not None:
                add(code, {"valueQuantity": quantity(float(value), v.RATIO)}, bodySite={"coding": [coding(v.HEART)]})
    if analysis.get("plane"):
        plane = v.private_code(analysis["plane"])
        components = [] if analysis.get("plane_probability") is None else [
            {"code": {"coding": [coding(v.PROBABILITY)]},
             "valueQuantity": quantity(float(analysis["plane_probability"]), v.NO_UNITS)}]
        add(v.IMAGE_VIEW, {"valueCodeableConcept": {"coding": [coding(plane)], "text": plane.meaning}},
            **({"component": components} if components else {}))
    quality = analysis.get("quality")
    if isinstance(quality, dict) and quality.get("grade"):
        grade = v.private_code(str(quality["grade"]))
        add(v.IMAGE_QUALITY_RATING, {"valueCodeableConcept": {"coding": [coding(grade)], "text": grade.meaning}})
    return out


def models_used(record: dict[str, Any]) -> str:
    """`` (models: ...)`` naming the model bundles behind the reported values (:func:`model_label`), or ``""``."""
    measurement, analysis = parts(record)
    labels = [model_label(m) for m in (analysis.get("model"), (measurement or {}).get("model"))
              if isinstance(m, dict) and m.get("id")]
    return f" (models: {', '.join(dict.fromkeys(labels))})" if labels else ""


def study_reference(src: Source) -> dict[str, Any]:
    """A logical reference to the ImagingStudy by its Study Instance UID (as DICOMweb and IHE do)."""
    return {"type": "ImagingStudy", "identifier": {"system": "urn:dicom:uid", "value": f"urn:oid:{src.study_uid}"}}


def report_bundle(result: HasRecord | dict[str, Any], source: Dataset | str | Path | None = None) -> dict[str, Any]:
    """The FHIR Bundle (JSON dict) of ``result``; ``source`` (the DICOM input) adds the patient identifier and
    the ImagingStudy reference. Raises ``BadInputError`` when the record holds no value to report."""
    from fhir.resources.R4B.bundle import Bundle

    record = record_of(result)
    found = observations(record)
    if not found:
        raise BadInputError(f"{record.get('image', 'this result')}: nothing to report in FHIR (no accepted "
                            "measurement and no plane classification)")
    src = None if source is None else read_source(source)
    issued = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    device = {"display": f"fetalscope {__version__}"}
    common: dict[str, Any] = {"issued": issued, "effectiveDateTime": issued, "device": device}
    subject = None
    if src is not None and str(src.header.get("PatientID", "")):
        subject = {"identifier": {"value": str(src.header.PatientID)}, "display": str(src.header.PatientName)}
    urls = [f"urn:uuid:{uuid.uuid4()}" for _ in found]
    for obs in found:
        obs.update(common)
        if subject:
            obs["subject"] = subject
        if src is not None:
            obs["derivedFrom"] = [study_reference(src)]
    report: dict[str, Any] = {
        "resourceType": "DiagnosticReport", "status": "preliminary",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD",
                                  "display": "Radiology"}]}],
        "code": {"coding": [coding(REPORT_CODE)], "text": REPORT_CODE.meaning},
        "issued": issued, "effectiveDateTime": issued,
        "performer": [device], "result": [{"reference": url} for url in urls],
        "conclusion": f"fetalscope {__version__} automated analysis of {Path(str(record.get('image', ''))).name}"
                      f"{models_used(record)}; to be reviewed by a clinician",
    }
    if subject:
        report["subject"] = subject
    if src is not None:
        report["imagingStudy"] = [study_reference(src)]
    entries = [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": report}]
    entries += [{"fullUrl": url, "resource": obs} for url, obs in zip(urls, found, strict=True)]
    bundle = {"resourceType": "Bundle", "type": "collection", "timestamp": issued, "entry": entries}
    Bundle.model_validate(bundle)  # raises pydantic's ValidationError on anything FHIR R4B does not allow
    return bundle


def write_fhir(result: HasRecord | dict[str, Any], out_dir: str | Path, *,
               source: Dataset | str | Path | None = None, name: str | None = None) -> Path:
    """Write :func:`report_bundle` to ``out_dir/<name or image stem>.fhir.json``; returns the path."""
    bundle = report_bundle(result, source)
    stem = name or Path(str(record_of(result).get("image") or "result")).stem
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stem}.fhir.json"
    path.write_text(json.dumps(bundle, indent=2, ensure_ascii=False), encoding="utf-8")
    return path
