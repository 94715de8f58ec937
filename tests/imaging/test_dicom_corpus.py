"""DICOM written by others: pydicom's own test files (only those in the installed wheel; nothing is
downloaded), every compressed transfer syntax among them against an uncompressed or lossless twin, and
the Modality a DICOM states fed into the "is this ultrasound" check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    UltrasoundImageStorage,
    generate_uid,
)

from fetalscope.data.phantoms import make_phantom
from fetalscope.errors import BadInputError
from fetalscope.imaging import load_image
from fetalscope.imaging.quality import ood_check

CORPUS = Path(pydicom.data.__file__).parent / "test_files"
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about what it reads


def local(name: str) -> Path:
    path = pydicom.data.get_testdata_file(name, download=False)  # never fetch from the network
    if path is None:
        pytest.skip(f"{name} is not in this pydicom wheel")
    return Path(path)


def pixels(name: str, **kwargs) -> np.ndarray:
    return load_image(local(name), **kwargs).pixels


# ----------------------------------------------------------------------------------------------- corpus

# compressed files that must decode (transfer syntax in the comment)
MUST_DECODE = [
    "MR_small_RLE.dcm", "SC_rgb_rle.dcm", "rtdose_rle.dcm",  # RLE Lossless
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS Lossless
    "JPEGLSNearLossless_08.dcm", "JPEGLSNearLossless_16.dcm", "SC_rgb_jls_lossy_line.dcm",
    "SC_rgb_jls_lossy_sample.dcm",  # JPEG-LS Near-Lossless
    "SC_rgb_jpeg_gdcm.dcm",  # JPEG Lossless SV1 (Process 14)
    "JPGExtended.dcm", "JPEG-lossy.dcm",  # JPEG Extended, 12-bit samples
    "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_dcmtk_+eb+cy+n1.dcm", "SC_jpeg_no_color_transform.dcm",
    "examples_ybr_color.dcm",  # JPEG Baseline
    "MR_small_jp2klossless.dcm", "examples_jpeg2k.dcm", "GDCMJ2K_TextGBR.dcm",  # JPEG 2000 Lossless
    "JPEG2000.dcm", "693_J2KI.dcm",  # JPEG 2000
    "image_dfl.dcm",  # Deflated Explicit VR Little Endian
]

# refused, and why (a part of the message)
MUST_REFUSE = {
    "MR_truncated.dcm": "pixel data cannot be decoded",
    "JPEG2000-embedded-sequence-delimiter.dcm": "pixel data cannot be decoded",
    "SC_rgb_small_odd.dcm": "both sides must be at least 8 px",
    "reportsi.dcm": "DICOM file has no pixel data",
    "rtplan.dcm": "DICOM file has no pixel data",
    "waveform_ecg.dcm": "DICOM file has no pixel data",
    "nested_priv_SQ.dcm": "no Rows (0028,0010) or Columns (0028,0011)",
    "badVR.dcm": "NumberOfFrames (0028,0008) is not a whole number",
    "README.txt": "not a readable image",
}


def test_every_local_pydicom_test_file_is_decoded_or_refused_with_a_reason() -> None:
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file())
    assert len(files) > 80, f"pydicom's test files not found under {CORPUS}"
    decoded: list[str] = []
    refused: dict[str, str] = {}
    for path in files:
        rel = str(path.relative_to(CORPUS))
        try:
            image = load_image(path)
        except BadInputError as exc:  # PayloadTooLargeError included; any other type fails the test
            assert str(exc).startswith(f"{path}: ") and len(str(exc)) > len(str(path)) + 10, rel
            refused[rel] = str(exc)
            continue
        px = image.pixels
        assert px.ndim == 3 and px.shape[2] == 3 and px.dtype == np.uint8, rel
        assert set(image.meta) == {"modality", "sop_class_uid", "transfer_syntax_uid"}, rel
        decoded.append(rel)
    assert not set(MUST_DECODE) - set(decoded), {n: refused.get(n) for n in set(MUST_DECODE) - set(decoded)}
    for name, why in MUST_REFUSE.items():
        assert why in refused.get(name, ""), (name, refused.get(name))
    # pixel data that exists is never refused for want of a decoder
    assert not [m for m in refused.values() if "no decoder" in m or "missing dependencies" in m]


def test_every_transfer_syntax_pydicom_decodes_has_an_installed_decoder() -> None:
    """The core dependencies (GDCM, pylibjpeg-openjpeg, pyjpegls) cover all of them, HTJ2K included."""
    from pydicom.pixels.decoders.base import _PIXEL_DATA_DECODERS

    from fetalscope.imaging import jpeg12

    jpeg12.register()
    missing = {uid.name: decoder.missing_dependencies for uid, (decoder, _) in _PIXEL_DATA_DECODERS.items()
               if not decoder.is_available}
    assert not missing


# ---------------------------------------------------------------------- compressed vs uncompressed twins

LOSSLESS_TWINS = [
    ("MR_small.dcm", "MR_small_RLE.dcm"),  # RLE Lossless
    ("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm"),  # JPEG-LS Lossless
    ("MR_small.dcm", "MR_small_jp2klossless.dcm"),  # JPEG 2000 Lossless
    ("MR_small.dcm", "MR_small_bigendian.dcm"),  # Explicit VR Big Endian
    ("MR_small.dcm", "MR_small_implicit.dcm"),  # Implicit VR Little Endian
    ("SC_rgb_rle.dcm", "SC_rgb_jpeg_gdcm.dcm"),  # JPEG Lossless SV1
    ("SC_rgb_rle.dcm", "SC_rgb_gdcm_KY.dcm"),  # JPEG 2000 (lossless content)
    ("SC_rgb_rle.dcm", "SC_rgb_rle_16bit.dcm"),  # RLE, 16 bits per sample
    ("rtdose.dcm", "rtdose_rle.dcm"),  # RLE, 32-bit, multi-frame (the middle frame)
    ("liver_1frame.dcm", "liver_expb_1frame.dcm"),
]


@pytest.mark.parametrize(("reference", "compressed"), LOSSLESS_TWINS)
def test_lossless_transfer_syntaxes_match_the_uncompressed_twin_exactly(reference: str, compressed: str) -> None:
    np.testing.assert_array_equal(pixels(compressed), pixels(reference))


LOSSY_TWINS = [  # (reference, compressed, largest mean absolute difference in grey levels)
    ("SC_rgb_rle.dcm", "SC_rgb_jls_lossy_line.dcm", 1.0),  # JPEG-LS Near-Lossless (NEAR=2)
    ("SC_rgb_rle.dcm", "SC_rgb_jls_lossy_sample.dcm", 1.0),
    ("SC_rgb_rle.dcm", "SC_rgb_jpeg_dcmtk.dcm", 1.0),  # JPEG Baseline, YBR_FULL_422
    ("SC_rgb_rle.dcm", "SC_rgb_dcmtk_+eb+cr.dcm", 1.0),  # JPEG Baseline, RGB
    ("SC_rgb_rle.dcm", "SC_rgb_dcmtk_+eb+cy+n1.dcm", 4.0),  # JPEG Baseline, 4:2:0 subsampled chroma
    ("SC_rgb_rle.dcm", "SC_rgb_jpeg_lossy_gdcm.dcm", 4.0),
]


@pytest.mark.parametrize(("reference", "compressed", "tolerance"), LOSSY_TWINS)
def test_lossy_transfer_syntaxes_are_close_to_the_lossless_twin(reference: str, compressed: str,
                                                                tolerance: float) -> None:
    diff = np.abs(pixels(compressed).astype(np.int16) - pixels(reference))
    assert diff.mean() <= tolerance, diff.mean()


def test_jpeg_extended_12_bit() -> None:
    """JPEG Extended with 12-bit samples (pydicom's GDCM plugin refuses them; fetalscope's decodes them with
    GDCM). JPGExtended.dcm is JPEG-lossy.dcm with its markers fixed: the same pixels. JPEG2000.dcm is another
    lossy coding of the same nuclear-medicine image (NM1 of the NEMA WG04 set)."""
    twelve = pixels("JPGExtended.dcm")
    np.testing.assert_array_equal(pixels("JPEG-lossy.dcm"), twelve)
    raw = pydicom.dcmread(local("JPGExtended.dcm"))
    assert raw.BitsStored == 12
    j2k = pixels("JPEG2000.dcm")
    assert np.corrcoef(twelve[..., 0].ravel(), j2k[..., 0].ravel())[0, 1] > 0.9


@pytest.mark.parametrize("name", ["JPEGLSNearLossless_08.dcm", "JPEGLSNearLossless_16.dcm",
                                  "SC_rgb_jls_lossy_line.dcm"])
def test_jpeg_ls_near_lossless_two_independent_decoders_agree(name: str) -> None:
    """No uncompressed twin in the wheel: GDCM (CharLS inside) and pyjpegls must give the same samples."""
    arrays = []
    for plugin in ("gdcm", "pyjpegls"):
        ds = pydicom.dcmread(local(name))
        ds.pixel_array_options(decoding_plugin=plugin)
        arrays.append(ds.pixel_array)
    np.testing.assert_array_equal(arrays[0], arrays[1])
    assert load_image(local(name)).pixels.dtype == np.uint8


def test_a_multi_frame_rle_file_gives_the_frame_asked_for() -> None:
    np.testing.assert_array_equal(pixels("SC_rgb_rle_2frame.dcm", frame=0), pixels("SC_rgb_rle.dcm"))


# -------------------------------------------------------------------------------- transfer syntax refusals

def write_dicom(path: Path, image: np.ndarray, *, modality: str | None = "US",
                sop_class: str = UltrasoundImageStorage, transfer_syntax: str = ExplicitVRLittleEndian,
                pixel_data: bytes | None = None) -> Path:
    """An 8-bit MONOCHROME2 DICOM of ``image`` (``H x W`` uint8)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    if modality is not None:
        ds.Modality = modality
    ds.PatientName = "Anon^Anon"
    ds.PatientID = "12345"
    ds.Rows, ds.Columns = image.shape[:2]
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.SamplesPerPixel = 1
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(image).tobytes() if pixel_data is None else pixel_data
    ds.save_as(path, enforce_file_format=True)
    return path


def test_an_unsupported_transfer_syntax_is_refused_by_name(tmp_path: Path) -> None:
    """An MPEG-4 cine loop (common from ultrasound machines): pydicom has no decoder for video."""
    image = np.zeros((32, 32), np.uint8)
    p = write_dicom(tmp_path / "cine.dcm", image, transfer_syntax="1.2.840.10008.1.2.4.102",
                    pixel_data=encapsulate([b"\0\0\0\x01" * 64]))
    with pytest.raises(BadInputError, match=r"cine.dcm: DICOM pixel data is in the unsupported transfer syntax "
                                            r"'MPEG-4 AVC/H.264 High Profile / Level 4.1' \(1.2.840.10008.1.2.4.102\)"):
        load_image(p)


def test_a_missing_decoder_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pydicom.pixels

    class NoPlugins:
        is_available = False
        missing_dependencies = ["pylibjpeg - requires pylibjpeg>=2.0 and pylibjpeg-openjpeg>=2.0"]

    monkeypatch.setattr(pydicom.pixels, "get_decoder", lambda uid: NoPlugins())
    p = write_dicom(tmp_path / "htj2k.dcm", np.zeros((32, 32), np.uint8))
    with pytest.raises(BadInputError, match=r"htj2k.dcm: .*'Explicit VR Little Endian' .* no decoder for it is "
                                            r"installed \(pylibjpeg - requires"):
        load_image(p)


# ------------------------------------------------------------------------------------ the stated modality

def test_ct_and_mr_files_are_flagged_as_not_ultrasound() -> None:
    for name, words in (("CT_small.dcm", "Modality CT (computed tomography)"),
                        ("MR_small.dcm", "Modality MR (magnetic resonance)"),
                        ("JPEG2000.dcm", "Modality NM (nuclear medicine)")):
        image = load_image(local(name))
        result = ood_check(image)
        assert result.flag and result.score == 1.0 and result.evidence["modality"] == 1.0, name
        assert result.reasons[0] == f"the DICOM says {words}, not ultrasound", result.reasons


def test_ultrasound_files_written_by_others_are_not_flagged_for_their_modality() -> None:
    for name in ("examples_rgb_color.dcm", "examples_jpeg2k.dcm"):  # US1_UNCR (cropped), US1_J2KR
        image = load_image(local(name))
        assert image.meta["modality"] == "US" and image.meta["sop_class_uid"] == UltrasoundImageStorage
        result = ood_check(image)
        assert result.evidence["modality"] == 0.0 and not result.flag, (name, result.reasons)


def test_loader_meta_holds_what_the_file_is_never_who(tmp_path: Path) -> None:
    p = write_dicom(tmp_path / "us.dcm", make_phantom("Fetal brain", np.random.default_rng(0), (96, 128)))
    meta = load_image(p).meta
    assert meta == {"modality": "US", "sop_class_uid": UltrasoundImageStorage,
                    "transfer_syntax_uid": ExplicitVRLittleEndian}
    assert "Anon" not in repr(meta) and "12345" not in repr(meta)


@pytest.mark.parametrize(("modality", "sop_class", "flagged"), [
    ("US", UltrasoundImageStorage, None),
    ("CT", UltrasoundImageStorage, "the DICOM says Modality CT (computed tomography), not ultrasound"),
    ("CT", CTImageStorage, "the DICOM says Modality CT (computed tomography), not ultrasound"),
    ("DX", SecondaryCaptureImageStorage, "the DICOM says Modality DX (digital radiography), not ultrasound"),
    ("pt", SecondaryCaptureImageStorage, "the DICOM says Modality PT (positron emission tomography), not ultrasound"),
    ("US", CTImageStorage, None),  # the Modality is what the file says it is
    ("OT", SecondaryCaptureImageStorage, None),  # unknown: the pixels decide
    ("", SecondaryCaptureImageStorage, None),
    (None, SecondaryCaptureImageStorage, None),
    ("XYZ", SecondaryCaptureImageStorage, None),
    ("OT", CTImageStorage, "the DICOM's SOP class is CT Image Storage (computed tomography), not ultrasound"),
    (None, CTImageStorage, "the DICOM's SOP class is CT Image Storage (computed tomography), not ultrasound"),
])
def test_an_ultrasound_image_is_flagged_by_the_modality_its_file_states(
        tmp_path: Path, modality: str | None, sop_class: str, flagged: str | None) -> None:
    """The same B-mode phantom (which passes every pixel cue) in files that say different things."""
    phantom = make_phantom("Fetal abdomen", np.random.default_rng(3), (96, 128))
    result = ood_check(load_image(write_dicom(tmp_path / "x.dcm", phantom, modality=modality,
                                              sop_class=sop_class)))
    if flagged is None:
        assert not result.flag and result.reasons == [], result.reasons
    else:
        assert result.flag and result.reasons == [flagged]


def test_arrays_and_other_formats_have_no_modality_cue() -> None:
    phantom = make_phantom("Fetal femur", np.random.default_rng(2), (96, 96))
    result = ood_check(phantom)
    assert not result.flag and result.evidence["modality"] == 0.0
