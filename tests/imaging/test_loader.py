"""The one loader on every format, written to real files, and on bad input."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from fetalscope.errors import BadInputError, PayloadTooLargeError
from fetalscope.imaging import iter_image_paths, load_image

H, W = 24, 32


def ramp8() -> np.ndarray:
    """H x W uint8 with distinct values over the whole 0..255 range."""
    return np.linspace(0, 255, H * W).round().astype(np.uint8).reshape(H, W)


def rgb8() -> np.ndarray:
    g = ramp8()
    return np.stack([g, 255 - g, np.full_like(g, 77)], axis=2)


def assert_rgb(pixels: np.ndarray, shape: tuple[int, int] = (H, W)) -> None:
    assert pixels.dtype == np.uint8
    assert pixels.shape == (*shape, 3)


def grey_of(pixels: np.ndarray) -> np.ndarray:
    assert np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 0], pixels[..., 2])
    return pixels[..., 0]


# ---------------------------------------------------------------- PNG / JPEG / BMP / TIFF


def test_png_greyscale_l(tmp_path: Path) -> None:
    p = tmp_path / "l.png"
    Image.fromarray(ramp8(), mode="L").save(p)
    img = load_image(p)
    assert_rgb(img.pixels)
    assert np.array_equal(grey_of(img.pixels), ramp8())
    assert img.format == "PNG" and img.original_mode == "L" and img.bit_depth == 8
    assert np.array_equal(img.gray, ramp8())


def test_png_rgb(tmp_path: Path) -> None:
    p = tmp_path / "rgb.png"
    Image.fromarray(rgb8(), mode="RGB").save(p)
    img = load_image(p)
    assert_rgb(img.pixels)
    assert np.array_equal(img.pixels, rgb8())


def test_png_rgba_composited_on_black(tmp_path: Path) -> None:
    alpha = np.zeros((H, W), np.uint8)
    alpha[:, W // 2 :] = 255
    alpha[:, W // 4 : W // 2] = 128
    rgba = np.dstack([rgb8(), alpha])
    p = tmp_path / "rgba.png"
    Image.fromarray(rgba, mode="RGBA").save(p)
    px = load_image(p).pixels
    assert_rgb(px)
    assert np.all(px[:, : W // 4] == 0)  # transparent -> black
    assert np.array_equal(px[:, W // 2 :], rgb8()[:, W // 2 :])  # opaque -> as is
    half = np.rint(rgb8()[:, W // 4 : W // 2].astype(float) * 128 / 255)
    assert np.abs(px[:, W // 4 : W // 2].astype(int) - half).max() <= 1


def test_png_palette(tmp_path: Path) -> None:
    palette = [0, 0, 0, 255, 0, 0, 0, 255, 0, 10, 20, 30] + [0] * (256 * 3 - 12)
    idx = (np.arange(H * W).reshape(H, W) % 4).astype(np.uint8)
    im = Image.fromarray(idx, mode="P")
    im.putpalette(palette)
    p = tmp_path / "p.png"
    im.save(p)
    img = load_image(p)
    assert_rgb(img.pixels)
    assert img.original_mode == "P"
    lut = np.array(palette, np.uint8).reshape(256, 3)
    assert np.array_equal(img.pixels, lut[idx])


def test_png_grey_alpha_la(tmp_path: Path) -> None:
    alpha = np.full((H, W), 255, np.uint8)
    alpha[:4] = 0
    p = tmp_path / "la.png"
    Image.fromarray(np.dstack([ramp8(), alpha]), mode="LA").save(p)
    g = grey_of(load_image(p).pixels)
    assert np.all(g[:4] == 0)
    assert np.array_equal(g[4:], ramp8()[4:])


def test_png_16bit_stretched_by_range(tmp_path: Path) -> None:
    a16 = np.linspace(1000, 3000, H * W).round().astype(np.uint16).reshape(H, W)
    p = tmp_path / "i16.png"
    Image.fromarray(a16).save(p)  # mode I;16
    img = load_image(p)
    assert_rgb(img.pixels)
    assert img.bit_depth == 16
    g = grey_of(img.pixels)
    expected = np.rint((a16.astype(float) - 1000) * 255 / 2000)
    assert g.min() == 0 and g.max() == 255
    assert np.abs(g.astype(int) - expected).max() <= 1


def test_jpeg(tmp_path: Path) -> None:
    p = tmp_path / "x.jpg"
    smooth = np.tile(np.linspace(30, 220, W), (H, 1)).astype(np.uint8)
    Image.fromarray(smooth, mode="L").save(p, quality=95)
    img = load_image(p)
    assert_rgb(img.pixels)
    assert img.format == "JPEG"
    assert np.abs(grey_of(img.pixels).astype(int) - smooth).mean() < 3


def test_bmp(tmp_path: Path) -> None:
    p = tmp_path / "x.bmp"
    Image.fromarray(rgb8(), mode="RGB").save(p)
    img = load_image(p)
    assert img.format == "BMP"
    assert np.array_equal(img.pixels, rgb8())


def test_tiff_8bit(tmp_path: Path) -> None:
    p = tmp_path / "x.tif"
    tifffile.imwrite(p, ramp8())
    img = load_image(p)
    assert_rgb(img.pixels)
    assert img.format == "TIFF"
    assert np.array_equal(grey_of(img.pixels), ramp8())


def test_tiff_16bit_grey(tmp_path: Path) -> None:
    a16 = np.linspace(0, 65535, H * W).round().astype(np.uint16).reshape(H, W)
    p = tmp_path / "x16.tiff"
    tifffile.imwrite(p, a16)
    img = load_image(p)
    assert_rgb(img.pixels)
    assert img.bit_depth == 16
    expected = np.rint(a16.astype(float) * 255 / 65535)
    assert np.abs(grey_of(img.pixels).astype(int) - expected).max() <= 1


def test_tiff_16bit_rgb_and_pages(tmp_path: Path) -> None:
    a = np.zeros((2, H, W, 3), np.uint16)
    a[0, ..., 0] = 60000  # page 0: red
    a[1, ..., 2] = 60000  # page 1: blue
    a[:, 0, 0, :] = 0
    p = tmp_path / "rgb16.tif"
    tifffile.imwrite(p, a, photometric="rgb")
    first = load_image(p)
    second = load_image(p, frame=1)
    assert_rgb(first.pixels) and assert_rgb(second.pixels)
    assert first.n_frames == 2 and second.frame == 1
    assert first.pixels[5, 5].tolist() == [255, 0, 0]
    assert second.pixels[5, 5].tolist() == [0, 0, 255]


def test_bytes_and_stream_inputs(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(ramp8(), mode="L").save(buf, format="PNG")
    a = load_image(buf.getvalue(), name="upload.png")
    b = load_image(io.BytesIO(buf.getvalue()))
    assert np.array_equal(a.pixels, b.pixels)
    assert a.source == "upload.png"


# ---------------------------------------------------------------- DICOM


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    frames: int = 1,
    spacing: tuple[float, float] | None = None,
    with_pixels: bool = True,
) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.PatientName = "Anon"
    if frames > 1:
        ds.NumberOfFrames = frames
        rows, cols = pixels.shape[1:3]
    else:
        rows, cols = pixels.shape[:2]
    ds.Rows, ds.Columns = rows, cols
    ds.PhotometricInterpretation = photometric
    ds.SamplesPerPixel = 3 if photometric == "RGB" else 1
    if photometric == "RGB":
        ds.PlanarConfiguration = 0
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if spacing:
        ds.PixelSpacing = [f"{spacing[0]}", f"{spacing[1]}"]
    if with_pixels:
        ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_monochrome2_8bit_with_spacing(tmp_path: Path) -> None:
    p = write_dicom(tmp_path / "m2.dcm", ramp8(), spacing=(0.15, 0.15))
    img = load_image(p)
    assert_rgb(img.pixels)
    assert img.format == "DICOM"
    assert img.pixel_spacing_mm == pytest.approx(0.15)
    assert np.array_equal(grey_of(img.pixels), ramp8())
    assert "PatientName" not in str(img.meta)


def test_dicom_monochrome2_16bit(tmp_path: Path) -> None:
    a16 = np.linspace(200, 4000, H * W).round().astype(np.uint16).reshape(H, W)
    p = write_dicom(tmp_path / "m16.dcm", a16)
    img = load_image(p)
    assert img.bit_depth == 16
    g = grey_of(img.pixels)
    expected = np.rint((a16.astype(float) - 200) * 255 / 3800)
    assert np.abs(g.astype(int) - expected).max() <= 1


def test_dicom_monochrome1_inverted(tmp_path: Path) -> None:
    p = write_dicom(tmp_path / "m1.dcm", ramp8(), photometric="MONOCHROME1")
    g = grey_of(load_image(p).pixels)
    assert np.array_equal(g, 255 - ramp8())


def test_dicom_rgb(tmp_path: Path) -> None:
    p = write_dicom(tmp_path / "rgb.dcm", rgb8(), photometric="RGB")
    img = load_image(p)
    assert np.array_equal(img.pixels, rgb8())


def test_dicom_multiframe_chosen_frame(tmp_path: Path) -> None:
    frames = np.stack([np.full((H, W), v, np.uint8) for v in (10, 20, 30, 40, 50)])
    frames[:, 0, 0] = 0
    frames[:, -1, -1] = 255  # fixed range so stretching keeps each frame's value
    p = write_dicom(tmp_path / "cine.dcm", frames, frames=5)
    middle = load_image(p)
    assert middle.n_frames == 5 and middle.frame == 2
    assert grey_of(middle.pixels)[5, 5] == 30
    third = load_image(p, frame=3)
    assert third.frame == 3 and grey_of(third.pixels)[5, 5] == 40
    with pytest.raises(BadInputError, match="frame 9"):
        load_image(p, frame=9)


def test_dicom_without_extension_is_detected_by_magic(tmp_path: Path) -> None:
    p = write_dicom(tmp_path / "IM0001", ramp8())
    assert load_image(p).format == "DICOM"


def test_dicom_without_pixel_data(tmp_path: Path) -> None:
    p = write_dicom(tmp_path / "sr.dcm", ramp8(), with_pixels=False)
    with pytest.raises(BadInputError, match="no pixel data"):
        load_image(p)


def test_dicom_huge_rows_fails_before_decoding(tmp_path: Path) -> None:
    p = write_dicom(tmp_path / "huge.dcm", ramp8())
    ds = pydicom.dcmread(p)
    ds.Rows, ds.Columns = 60000, 60000  # pixel data stays tiny: decoding would fail differently
    ds.save_as(p)
    with pytest.raises(PayloadTooLargeError, match="over the limit"):
        load_image(p)


# ---------------------------------------------------------------- bad input


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG signature + IHDR (valid CRC) claiming width x height, then an empty IDAT and IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


def test_huge_dimensions_fail_fast(tmp_path: Path) -> None:
    import time

    p = tmp_path / "bomb.png"
    p.write_bytes(_png_header_only(100_000, 100_000))
    t0 = time.perf_counter()
    with pytest.raises(PayloadTooLargeError) as err:
        load_image(p)
    assert time.perf_counter() - t0 < 1.0
    assert "bomb.png" in str(err.value)


def test_dimensions_over_custom_limit(tmp_path: Path) -> None:
    p = tmp_path / "big.png"
    p.write_bytes(_png_header_only(5000, 4000))
    with pytest.raises(PayloadTooLargeError, match="5000x4000"):
        load_image(p, max_pixels=1_000_000)


def test_bytes_over_limit(tmp_path: Path) -> None:
    p = tmp_path / "x.png"
    Image.fromarray(ramp8(), mode="L").save(p)
    with pytest.raises(PayloadTooLargeError, match="limit"):
        load_image(p, max_bytes=10)


def test_corrupt_bytes(tmp_path: Path) -> None:
    p = tmp_path / "noise.png"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(BadInputError, match="noise.png"):
        load_image(p)


def test_truncated_png(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (200, 200), dtype=np.uint8), mode="L").save(
        buf, "PNG"
    )
    p = tmp_path / "cut.png"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(BadInputError, match="cut.png.*(truncated|corrupt)"):
        load_image(p)


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    with pytest.raises(BadInputError, match="empty"):
        load_image(p)


def test_text_file_named_png(tmp_path: Path) -> None:
    p = tmp_path / "notes.png"
    p.write_text("patient notes, not an image\n" * 20)
    with pytest.raises(BadInputError, match="not a readable image"):
        load_image(p)


def test_tiny_image_rejected(tmp_path: Path) -> None:
    p = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((4, 4), np.uint8), mode="L").save(p)
    with pytest.raises(BadInputError, match="at least"):
        load_image(p)


def test_missing_path_and_folder(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(BadInputError, match="folder"):
        load_image(tmp_path)


def test_unreadable_path_names_are_bad_input(tmp_path: Path) -> None:
    too_long = tmp_path / ("a" * 300 + ".png")  # the OS refuses the name itself (ENAMETOOLONG)
    with pytest.raises(BadInputError, match="aaaa.png: cannot be read"):
        list(iter_image_paths([too_long]))
    with pytest.raises(BadInputError, match="aaaa.png: cannot be read"):
        load_image(too_long)


def test_iter_image_paths(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(BadInputError, match="no images"):
        list(iter_image_paths(tmp_path / "empty"))
    with pytest.raises(BadInputError, match="no such file"):
        list(iter_image_paths([tmp_path / "nope"]))
    sub = tmp_path / "imgs" / "deeper"
    sub.mkdir(parents=True)
    for name in ("b.png", "a.PNG", "c.dcm"):
        (sub / name).write_bytes(b"x")
    found = list(iter_image_paths(tmp_path / "imgs"))
    assert [f.name for f in found] == ["a.PNG", "b.png", "c.dcm"]


def test_png_named_dcm_still_loads(tmp_path: Path) -> None:
    p = tmp_path / "export.dcm"
    Image.fromarray(ramp8(), mode="L").save(p, format="PNG")
    img = load_image(p)
    assert img.format == "PNG"
    assert np.array_equal(grey_of(img.pixels), ramp8())


def test_garbage_named_dcm(tmp_path: Path) -> None:
    p = tmp_path / "bad.dcm"
    p.write_bytes(b"\x00\x01garbage" * 50)
    with pytest.raises(BadInputError, match="bad.dcm: not a readable DICOM"):
        load_image(p)


# ---------------------------------------------------------------- decoder errors, lazy and degenerate


def test_dicom_corrupt_vr_pixel_spacing_is_bad_input(tmp_path: Path) -> None:
    """pydicom reads the file and raises NotImplementedError only when PixelSpacing is first read: the
    loader reads it and says which element of which file is broken."""
    from fuzzing import corrupt_vr_pixel_spacing_dicom

    p = tmp_path / "scan.dcm"
    p.write_bytes(corrupt_vr_pixel_spacing_dicom(ramp8()))
    pydicom.dcmread(p)  # the file itself parses
    with pytest.raises(BadInputError) as err:
        load_image(p)
    message = str(err.value)
    assert type(err.value) is BadInputError
    assert message.startswith(f"{p}: DICOM element PixelSpacing (0028,0030) is corrupt")
    assert "Unknown Value Representation 'ZZ'" in message and "\n" not in message
    with pytest.raises(BadInputError, match="upload.dcm: DICOM element PixelSpacing"):
        load_image(p.read_bytes(), name="upload.dcm")


def _with_element(path: Path, tag: int, vr: bytes, value: bytes) -> bytes:
    """The DICOM file at ``path`` with one element set to raw ``vr`` and ``value`` bytes, as pydicom would
    never write it."""
    from fuzzing import dicom_parse, dicom_write, set_element

    elements = dicom_parse(path.read_bytes())
    set_element(elements, tag, vr, value)
    return dicom_write(elements)


@pytest.mark.filterwarnings("ignore::UserWarning")  # the decoders warn about what they read
def test_dicom_other_lazily_read_elements_are_bad_input(tmp_path: Path) -> None:
    p = write_dicom(tmp_path / "rows.dcm", ramp8(), spacing=(0.1, 0.1))
    with pytest.raises(BadInputError, match=r"rows.dcm: DICOM element Rows \(0028,0010\) is corrupt"):
        load_image(_with_element(p, 0x00280010, b"Q!", struct.pack("<H", H)), name="rows.dcm")
    with pytest.raises(BadInputError, match=r"rows.dcm: DICOM element NumberOfFrames \(0028,0008\) is not a whole"):
        load_image(_with_element(p, 0x00280008, b"IS", b"abc "), name="rows.dcm")
    with pytest.raises(BadInputError, match="rows.dcm: DICOM NumberOfFrames is -4"):
        load_image(_with_element(p, 0x00280008, b"IS", b"-4"), name="rows.dcm")
    # frames the pixel data does not have: an error, not a hang or a huge allocation
    with pytest.raises(BadInputError, match="rows.dcm: DICOM pixel data cannot be decoded"):
        load_image(_with_element(p, 0x00280008, b"IS", b"2000000000"), name="rows.dcm")
    # the Modality decides whether the image is taken for ultrasound: unreadable is an error, not "unknown"
    with pytest.raises(BadInputError, match=r"rows.dcm: DICOM element Modality \(0008,0060\) is corrupt"):
        load_image(_with_element(p, 0x00080060, b"ZZ", b"US"), name="rows.dcm")


@pytest.mark.parametrize(("vr", "value", "expected"), [
    (b"DS", b"0.25\\0.25", 0.25), (b"DS", b"abc\\def", None), (b"DS", b"nan\\nan", None),
    (b"DS", b"-1\\-1", None), (b"DS", b"0\\0", None), (b"DS", b"inf\\1", None), (b"DS", b"", None),
    (b"FD", struct.pack("<d", 0.3), "value representation is 'FD'"), (b"DS", b"\xff\xfe", None),
    (b"ZZ", b"0.1\\0.1 ", "Unknown Value Representation 'ZZ'"), (b"FD", b"0.1\\0.1\\9", "corrupt"),
])
def test_dicom_pixel_spacing_values(tmp_path: Path, vr: bytes, value: bytes, expected: object) -> None:
    """An element that cannot be read as a DS is an error (a measurement must neither lose its scale silently
    nor use a made-up one); a readable value that is not a positive finite size means "unknown"."""
    p = write_dicom(tmp_path / "sp.dcm", ramp8(), spacing=(0.1, 0.1))
    data = _with_element(p, 0x00280030, vr, value + b" " * (len(value) % 2))
    if isinstance(expected, str):
        with pytest.raises(BadInputError, match="sp.dcm: DICOM element PixelSpacing") as err:
            load_image(data, name="sp.dcm")
        assert expected in str(err.value)
    else:
        assert load_image(data, name="sp.dcm").pixel_spacing_mm == expected


def test_float_tiff_without_finite_values_is_bad_input(tmp_path: Path) -> None:
    for fill in (np.nan, np.inf):
        p = tmp_path / "nan.tif"
        tifffile.imwrite(p, np.full((H, W), fill, np.float32))
        with pytest.raises(BadInputError, match="nan.tif: image has no finite pixel values"):
            load_image(p)
    partly = ramp8().astype(np.float32)
    partly[:4] = np.nan
    tifffile.imwrite(p, partly)
    px = load_image(p).pixels
    assert_rgb(px)
    assert np.all(px[:4] == 0) and px[4:].max() == 255


def test_tiff_page_sizes_are_checked_per_page(tmp_path: Path) -> None:
    p = tmp_path / "pages.tif"
    with tifffile.TiffWriter(p) as tif:
        tif.write(ramp8())
        tif.write(np.zeros((2, W), np.uint8))  # a 1-px-ish second page
    assert_rgb(load_image(p).pixels)
    with pytest.raises(BadInputError, match="pages.tif: image is 32x2"):
        load_image(p, frame=1)


@pytest.mark.filterwarnings("ignore::UserWarning")  # the decoders warn about what they read
def test_tiff_with_a_cut_ifd_is_bad_input(tmp_path: Path) -> None:
    """Found by the fuzzer: an IFD entry count cut short makes Pillow raise TypeError ("Missing dimensions")."""
    buf = io.BytesIO()
    tifffile.imwrite(buf, (ramp8().astype(np.uint16) * 200), rowsperstrip=8, metadata=None)
    data = bytearray(buf.getvalue())
    ifd = struct.unpack_from("<I", data, 4)[0]
    struct.pack_into("<H", data, ifd, struct.unpack_from("<H", data, ifd)[0] - 4)
    with pytest.raises(BadInputError, match="cut.tif"):
        load_image(bytes(data), name="cut.tif")


def test_pixels_are_plain_owned_arrays(tmp_path: Path) -> None:
    """Nothing of a decoder escapes: Pillow's arrays are read-only views, so the loader copies them."""
    p = tmp_path / "rgb.png"
    Image.fromarray(rgb8(), mode="RGB").save(p)
    for img in (load_image(p), load_image(write_dicom(tmp_path / "m.dcm", ramp8(), spacing=(0.2, 0.2)))):
        assert type(img.pixels) is np.ndarray and img.pixels.flags.owndata and img.pixels.flags.writeable
        img.pixels[0, 0] = 1  # downstream code may draw on it
    assert type(img.pixel_spacing_mm) is float and img.meta == {
        "modality": "US", "sop_class_uid": SecondaryCaptureImageStorage, "transfer_syntax_uid": ExplicitVRLittleEndian}
    assert all(type(v) is str for v in img.meta.values())
