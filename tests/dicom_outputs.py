"""Reading DICOM SR objects back in tests (plain pydicom, no highdicom): the content items, their numbers and
references. Imported as ``dicom_outputs`` (``tests`` is on the pytest path)."""

from __future__ import annotations

from collections.abc import Iterator

from pydicom.dataset import Dataset


def content_items(ds: Dataset) -> Iterator[Dataset]:
    """Every content item of an SR, depth first."""
    for item in getattr(ds, "ContentSequence", []):
        yield item
        yield from content_items(item)


def concept(item: Dataset) -> tuple[str, str]:
    code = item.ConceptNameCodeSequence[0]
    return code.CodeValue, code.CodingSchemeDesignator


def numbers(sr: Dataset) -> dict[str, list[tuple[float, str]]]:
    """LOINC/DCM code value -> [(value, UCUM unit)] of every NUM item."""
    out: dict[str, list[tuple[float, str]]] = {}
    for item in content_items(sr):
        if item.ValueType == "NUM":
            mv = item.MeasuredValueSequence[0]
            out.setdefault(concept(item)[0], []).append(
                (float(mv.NumericValue), mv.MeasurementUnitsCodeSequence[0].CodeValue))
    return out


def find(sr: Dataset, value_type: str) -> list[Dataset]:
    return [item for item in content_items(sr) if item.ValueType == value_type]
