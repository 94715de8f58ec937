"""The fallback a user asks for: the drawn result (the image with its ellipses and boxes burned in) as a
Secondary Capture in the source's study, for viewers that show neither SR nor presentation states. The
structured objects (:mod:`dicom_sr`, :mod:`dicom_pr`) remain the way results travel."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from fetalscope import __version__
from fetalscope.errors import BadInputError
from fetalscope.interop.dicom_sr import ALGORITHM_NAME, output_path
from fetalscope.interop.source import TYPE2_COPIED, read_source

SC_SERIES_NUMBER = 9020


def secondary_capture(drawn: np.ndarray, source: Dataset | str | Path, *, frame: int | None = None) -> Dataset:
    """``drawn`` (``H x W x 3`` uint8 RGB) as a Secondary Capture Image in ``source``'s patient and study."""
    pixels = np.asarray(drawn)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise BadInputError(f"a secondary capture needs an H x W x 3 uint8 RGB image, got {pixels.shape} "
                            f"{pixels.dtype}")
    src = read_source(source, frame)
    # built with pydicom: highdicom's SCImage wants a patient orientation, which an ultrasound image has not
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    capture = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    capture.SOPClassUID, capture.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    for keyword in (*TYPE2_COPIED, "StudyInstanceUID", "SpecificCharacterSet"):
        if keyword in src.header:
            setattr(capture, keyword, src.header.data_element(keyword).value)
    now = datetime.datetime.now()
    capture.SeriesInstanceUID, capture.SeriesNumber, capture.InstanceNumber = generate_uid(), SC_SERIES_NUMBER, 1
    capture.Modality = str(getattr(src.header, "Modality", "") or "OT")
    capture.SeriesDescription = "fetalscope drawing (secondary capture)"
    capture.ContentDate, capture.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    capture.Manufacturer, capture.SoftwareVersions = ALGORITHM_NAME, __version__
    capture.ConversionType = "WSD"  # workstation: a drawing made by software
    capture.PatientOrientation, capture.Laterality = "", ""
    capture.BurnedInAnnotation, capture.ImageType = "YES", ["DERIVED", "SECONDARY"]
    capture.Rows, capture.Columns = pixels.shape[:2]
    capture.SamplesPerPixel, capture.PhotometricInterpretation, capture.PlanarConfiguration = 3, "RGB", 0
    capture.BitsAllocated = capture.BitsStored = 8
    capture.HighBit, capture.PixelRepresentation = 7, 0
    capture.PixelData = np.ascontiguousarray(pixels).tobytes()
    source_image = Dataset()
    source_image.ReferencedSOPClassUID, source_image.ReferencedSOPInstanceUID = (src.header.SOPClassUID,
                                                                                 src.header.SOPInstanceUID)
    if src.frame is not None:
        source_image.ReferencedFrameNumber = src.frame
    capture.SourceImageSequence = [source_image]
    return capture


def write_secondary_capture(drawn: np.ndarray, source: Dataset | str | Path, out_dir: str | Path, *,
                            frame: int | None = None, name: str | None = None) -> Path:
    """Write :func:`secondary_capture` to ``out_dir/<name or source stem>_sc.dcm``; returns the path."""
    dataset = secondary_capture(drawn, source, frame=frame)
    path = output_path(source, out_dir, "sc", name)
    dataset.save_as(path, enforce_file_format=True)
    return path
