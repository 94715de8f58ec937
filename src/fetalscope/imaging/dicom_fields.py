"""Reading DICOM data elements safely, shared by the still loader and the cine-loop reader: pydicom decodes an
element only when it is first read, so every read here turns a corrupt element into a
:class:`~fetalscope.errors.BadInputError` naming it; plus the pixel size, the file's identity (never patient
fields) and whether an installed decoder can read its transfer syntax."""

from __future__ import annotations

from typing import Any

from fetalscope.errors import BadInputError
from fetalscope.imaging.decoding import cause, positive


def tag_label(keyword: str) -> str:
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(keyword)
    return keyword if tag is None else f"{keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})"


def dicom_element(ds: Any, keyword: str, name: str) -> Any:
    """A DICOM data element, ``None`` when absent. pydicom decodes an element only when it is first read;
    one that cannot be decoded (an unknown value representation, bytes that do not fit it) is a
    :class:`BadInputError` naming the element."""
    if keyword not in ds:
        return None
    try:
        return ds[keyword]
    except MemoryError:
        raise
    except Exception as exc:
        raise BadInputError(f"{name}: DICOM element {tag_label(keyword)} is corrupt and cannot be read "
                            f"({cause(exc)})") from exc


def dicom_value(ds: Any, keyword: str, name: str) -> Any:
    """The value of a DICOM element, ``None`` when absent (errors as :func:`dicom_element`)."""
    elem = dicom_element(ds, keyword, name)
    return None if elem is None else elem.value


def dicom_int(ds: Any, keyword: str, name: str, default: int) -> int:
    value = dicom_value(ds, keyword, name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadInputError(f"{name}: DICOM element {tag_label(keyword)} is not a whole number "
                            f"({cause(exc)})") from exc


def dicom_spacing(ds: Any, name: str) -> float | None:
    """Pixel size in mm from PixelSpacing / ImagerPixelSpacing / the first ultrasound region, or ``None``.

    An element that cannot be decoded or has another value representation than DS is a
    :class:`BadInputError` (a measurement must neither lose its scale silently nor use a made-up one); a
    decoded value that is not a positive finite size (0, empty, NaN, text) means "unknown".
    """
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
        elem = dicom_element(ds, key, name)
        if elem is None:
            continue
        if elem.VR != "DS":  # e.g. FD: eight bytes of text read as a double would be a made-up size
            raise BadInputError(f"{name}: DICOM element {tag_label(key)} is corrupt: its value representation "
                                f"is {elem.VR!r}, not 'DS' (decimal string)")
        value = elem.value
        try:
            spacing = positive(float(value if isinstance(value, (int, float, str, bytes)) else value[0]))
        except (TypeError, ValueError, IndexError, OverflowError):
            spacing = None
        if spacing is not None:
            return spacing
    if "SequenceOfUltrasoundRegions" in ds:
        # ultrasound DICOMs give physical deltas in cm per pixel per region; an unreadable region is no scale
        try:
            region = ds.SequenceOfUltrasoundRegions[0]
            if int(region.get("PhysicalUnitsXDirection", 0)) == 3:  # cm
                return positive(float(region.PhysicalDeltaX) * 10.0)
        except MemoryError:
            raise
        except Exception:
            return None
    return None


def dicom_text(ds: Any, keyword: str, name: str, max_chars: int = 64) -> str:
    """A short DICOM code or UID as plain text ('' when absent or empty; the first of several values),
    errors as :func:`dicom_element`. Only printable characters are kept, at most ``max_chars``."""
    value = dicom_value(ds, keyword, name)
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else ""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    text = "".join(c for c in str(value if value is not None else "") if c.isprintable()).strip()
    return text[:max_chars]


def dicom_identity(ds: Any, name: str) -> dict[str, str]:
    """What the file says it is: Modality (0008,0060), SOP Class UID (0008,0016, else the file meta's media
    storage SOP class) and the transfer syntax. Never patient fields. A present but unreadable Modality or
    SOP Class UID is a :class:`BadInputError`: they decide whether the image is taken for ultrasound."""
    modality = dicom_text(ds, "Modality", name, 16).upper()
    sop_class = dicom_text(ds, "SOPClassUID", name)
    file_meta = getattr(ds, "file_meta", None)
    if not sop_class and file_meta is not None:
        sop_class = dicom_text(file_meta, "MediaStorageSOPClassUID", name)
    transfer_syntax = "" if file_meta is None else dicom_text(file_meta, "TransferSyntaxUID", name)
    return {"modality": modality, "sop_class_uid": sop_class, "transfer_syntax_uid": transfer_syntax}


def transfer_syntax_label(transfer_syntax: str) -> str:
    from pydicom.uid import UID

    uid = UID(transfer_syntax)
    return f"'{uid.name}' ({transfer_syntax})" if uid.name != transfer_syntax else f"'{transfer_syntax}'"


def check_decodable(transfer_syntax: str, name: str) -> None:
    """Refuse, with the transfer syntax named, pixel data that no installed decoder can read: a syntax
    pydicom does not decode (e.g. MPEG-4 or HEVC video, JPEG XL) or one whose decoder plugins are missing."""
    from pydicom.pixels import get_decoder

    from fetalscope.imaging import jpeg12

    if not transfer_syntax:
        raise BadInputError(f"{name}: DICOM file has no Transfer Syntax UID (0002,0010); its pixel data cannot "
                            "be interpreted")
    jpeg12.register()
    try:
        decoder = get_decoder(transfer_syntax)
    except NotImplementedError as exc:
        raise BadInputError(f"{name}: DICOM pixel data is in the unsupported transfer syntax "
                            f"{transfer_syntax_label(transfer_syntax)} (supported: uncompressed, deflated, RLE, "
                            "JPEG, JPEG-LS, JPEG 2000, HTJ2K)") from exc
    if not decoder.is_available:
        raise BadInputError(f"{name}: DICOM pixel data is in the transfer syntax "
                            f"{transfer_syntax_label(transfer_syntax)} and no decoder for it is installed "
                            f"({cause(ValueError('; '.join(decoder.missing_dependencies)))})")

