"""A seeded mutation fuzzer for image inputs, shared by the loader and HTTP fuzz tests.

Seeds are real files of every supported format, written from one real ultrasound image (the first
FETAL_PLANES_DB brain image of ``../shared/data`` when present, else a synthetic phantom): PNG grey and
RGB, JPEG baseline and progressive, TIFF 8-bit, 16-bit and zlib-compressed RGB, BMP, and DICOM
(MONOCHROME2 16-bit with PixelSpacing and a VOI window, RGB, multi-frame with PixelSpacing, RLE
compressed) built with pydicom.

A :class:`Case` is ``(seed format, mutation, number)``; :func:`mutate` turns the seed file into the case's
bytes with ``random.Random`` seeded by the case id, so a case is the same bytes on every machine and run.
Mutations are byte-level (bit flips, byte runs, truncation, appended junk, splices) and structural:
PNG IHDR fields and chunks (CRC fixed so the decoder believes them), JPEG SOF fields and segments, TIFF
tag values, types, counts and IFD links, BMP header fields, DICOM attributes, value representations,
transfer syntax and pixel data, and absurd dimensions for every format.

Replay one case: ``FETALSCOPE_FUZZ_CASES_ONLY=png-grey:bitflip:17 pytest tests/imaging/test_fuzz_loader.py``,
or write its bytes: ``python tests/fuzzing.py png-grey:bitflip:17 case.png``.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import signal
import struct
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEED_SIZE = (112, 160)  # H x W of the seed images: small, so mutations often land in headers
CASES_ONLY_ENV = "FETALSCOPE_FUZZ_CASES_ONLY"

# ---------------------------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One fuzz case: which seed file, which mutation, and the number that seeds the mutation."""

    fmt: str
    mutation: str
    seed: int

    @property
    def id(self) -> str:
        return f"{self.fmt}:{self.mutation}:{self.seed}"

    @property
    def filename(self) -> str:
        return f"fuzz-{self.seed}{SEEDS[self.fmt]}"

    @classmethod
    def parse(cls, text: str) -> Case:
        fmt, mutation, seed = text.strip().split(":")
        if fmt not in SEEDS or mutation not in MUTATIONS or fmt not in MUTATIONS[mutation][0]:
            raise ValueError(f"unknown fuzz case {text!r}")
        return cls(fmt, mutation, int(seed))


def env_count(name: str, default: int) -> int:
    """A case count from the environment (``name``), else ``default``."""
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def pairs() -> list[tuple[str, str]]:
    """Every (seed format, mutation) pair, in a fixed order."""
    return [(fmt, name) for name, (formats, _fn) in MUTATIONS.items() for fmt in SEEDS if fmt in formats]


def cases(count: int, start: int = 0) -> list[Case]:
    """``count`` cases numbered from ``start``, going round every (format, mutation) pair so each is
    covered as evenly as the count allows. Disjoint ``start`` ranges give disjoint cases."""
    every = pairs()
    return [Case(*every[n % len(every)], n) for n in range(start, start + count)]


def params(default: list[Case], nightly: list[Case], nightly_mark: object, route: str | None = None) -> list[object]:
    """pytest params: the ``default`` cases unmarked, the ``nightly`` ones with ``nightly_mark``; only the
    cases named in ``$FETALSCOPE_FUZZ_CASES_ONLY`` (comma-separated ids) when it is set. With ``route``,
    each param is ``(route, case)``."""
    import pytest

    def param(case: Case, marks: object = ()) -> object:
        values = (case,) if route is None else (route, case)
        return pytest.param(*values, id=case.id if route is None else f"{route}-{case.id}", marks=marks)

    only = os.environ.get(CASES_ONLY_ENV, "").strip()
    if only:
        return [param(Case.parse(t)) for t in only.split(",") if t.strip()]
    return [param(c) for c in default] + [param(c, nightly_mark) for c in nightly]


# ---------------------------------------------------------------------------------------------- seeds

#: seed format -> file suffix (the name the fuzzed file is given: the loader and server look at it)
SEEDS: dict[str, str] = {
    "png-grey": ".png",
    "png-rgb": ".png",
    "jpeg": ".jpg",
    "jpeg-progressive": ".jpg",
    "tiff8": ".tif",
    "tiff16": ".tif",
    "tiff-rgb-zlib": ".tif",
    "bmp": ".bmp",
    "dicom-mono2": ".dcm",
    "dicom-rgb": ".dcm",
    "dicom-multiframe": ".dcm",
    "dicom-rle": ".dcm",
}
PNG = ("png-grey", "png-rgb")
JPEG = ("jpeg", "jpeg-progressive")
TIFF = ("tiff8", "tiff16", "tiff-rgb-zlib")
BMP = ("bmp",)
DICOM = ("dicom-mono2", "dicom-rgb", "dicom-multiframe", "dicom-rle")


def source_image() -> tuple[np.ndarray, str]:
    """The image every seed is made from: ``SEED_SIZE`` x 3 uint8 RGB, and where it came from."""
    from PIL import Image

    from fetalscope.config import shared_data_dir

    folder = shared_data_dir() / "fetal_planes_db_tv_alzubaidi" / "images"
    found = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if found:
        with Image.open(found[0]) as img:
            small = img.convert("RGB").resize(SEED_SIZE[::-1], Image.Resampling.BILINEAR)
        return np.asarray(small, dtype=np.uint8).copy(), f"real image {found[0].name}"
    from fetalscope.data.phantoms import make_phantom

    grey = make_phantom("Fetal brain", np.random.default_rng(0), SEED_SIZE)
    return np.repeat(grey[..., None], 3, axis=2), "synthetic phantom (no ../shared data)"


def make_seeds(rgb: np.ndarray) -> dict[str, bytes]:
    """Every seed file, as bytes, from one ``H x W x 3`` uint8 image (deterministic: fixed UIDs, no dates)."""
    import tifffile
    from PIL import Image

    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    # 16-bit grey with a 12-bit range, so stretching has work to do
    grey16 = (grey.astype(np.uint16) * 16 + np.arange(grey.size, dtype=np.uint16).reshape(grey.shape) % 16)

    def pil(arr: np.ndarray, fmt: str, **kw: object) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format=fmt, **kw)
        return buf.getvalue()

    def tiff(arr: np.ndarray, **kw: object) -> bytes:
        buf = io.BytesIO()
        tifffile.imwrite(buf, arr, rowsperstrip=16, metadata=None, **kw)
        return buf.getvalue()

    return {
        "png-grey": pil(grey, "PNG"),
        "png-rgb": pil(rgb, "PNG"),
        "jpeg": pil(rgb, "JPEG", quality=90),
        "jpeg-progressive": pil(grey, "JPEG", quality=85, progressive=True),
        "tiff8": tiff(grey, photometric="minisblack"),
        "tiff16": tiff(grey16, photometric="minisblack"),
        "tiff-rgb-zlib": tiff(rgb, photometric="rgb", compression="zlib"),
        "bmp": pil(rgb, "BMP"),
        "dicom-mono2": dicom_bytes(grey16, bits_stored=12, spacing="0.142", window=(2048, 4096)),
        "dicom-rgb": dicom_bytes(rgb, photometric="RGB"),
        "dicom-multiframe": dicom_bytes(np.stack([np.roll(grey, 3 * k, axis=1) for k in range(3)]),
                                        spacing="0.2\\0.2", frames=3),
        "dicom-rle": dicom_bytes(grey, rle=True, spacing="0.1\\0.1"),
    }


def dicom_bytes(pixels: np.ndarray, *, photometric: str = "MONOCHROME2", bits_stored: int | None = None,
                spacing: str | None = None, frames: int = 1, window: tuple[int, int] | None = None,
                rle: bool = False) -> bytes:
    """An ultrasound DICOM file written by pydicom (explicit VR little endian, or RLE lossless)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"  # Ultrasound Image Storage
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.2"
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.PatientName = "Fuzz^Seed"
    ds.PatientID = "FUZZ-0"
    rows, cols = pixels.shape[1:3] if frames > 1 else pixels.shape[:2]
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 3 if photometric == "RGB" else 1
    ds.PhotometricInterpretation = photometric
    if photometric == "RGB":
        ds.PlanarConfiguration = 0
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits_stored or bits
    ds.HighBit = (bits_stored or bits) - 1
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    if spacing is not None:
        ds.PixelSpacing = spacing.split("\\") if "\\" in spacing else [spacing, spacing]
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    if rle:
        ds.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def corrupt_vr_pixel_spacing_dicom(pixels: np.ndarray, vr: bytes = b"ZZ") -> bytes:
    """A valid MONOCHROME2 DICOM whose PixelSpacing element carries the value representation ``vr``
    (pydicom reads the file, and raises ``NotImplementedError`` only when the element is first read)."""
    data = bytearray(dicom_bytes(pixels, spacing="0.1\\0.1"))
    at = data.index(b"\x28\x00\x30\x00DS")
    data[at + 4 : at + 6] = vr
    return bytes(data)


# ------------------------------------------------------------------------------------------ helpers

Rng = random.Random


def _interesting(rng: Rng, bits: int, original: int | None = None, signed: bool = False) -> int:
    """A value for an integer field of ``bits`` bits that decoders often get wrong."""
    top = (1 << bits) - 1
    picks = [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 255, 256, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF,
             0x80000000, 0xFFFFFFFF, rng.randint(0, top)]
    if original is not None:
        picks += [original + 1, original - 1, original * 2, original // 2, original * 1000]
    value = rng.choice(picks)
    if signed and rng.random() < 0.3:
        value = -rng.choice([1, 2, 8, 0x7FFF, 0x7FFFFFFF, rng.randint(1, 1 << (bits - 1))])
    return value & top


def _absurd_dim(rng: Rng, bits: int, original: int) -> int:
    """A width or height that should be refused or survive: none, 1 px, just under/over the 8 px minimum,
    the type's maximum, huge, or far from the truth."""
    top = (1 << bits) - 1
    return rng.choice([0, 1, 2, 7, 8, 9, original * 64, original * 1000, 60_000, 65_535, top, top - 1,
                       1 << (bits - 1), rng.randint(0, top)]) & top


def _put(data: bytearray, offset: int, fmt: str, value: int) -> None:
    size = struct.calcsize(fmt)
    if offset >= 0 and offset + size <= len(data):
        struct.pack_into(fmt, data, offset, value & ((1 << (8 * size)) - 1) if fmt[-1].isupper() else value)


def _rand_bytes(rng: Rng, n: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(n))


def _position(rng: Rng, size: int) -> int:
    """A byte position, in the first 512 bytes (the headers) half of the time."""
    if size <= 1:
        return 0
    return rng.randrange(min(size, 512)) if rng.random() < 0.5 else rng.randrange(size)


# ----------------------------------------------------------------------------------- byte mutations


def bitflip(data: bytes, rng: Rng) -> bytes:
    out = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 4, 8, 32])):
        out[_position(rng, len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def byterun(data: bytes, rng: Rng) -> bytes:
    out = bytearray(data)
    at = _position(rng, len(out))
    n = rng.choice([1, 2, 4, 8, 16, 64, 256])
    fill = rng.choice([b"\x00", b"\xff", b"\x7f", b"\x80", None])
    run = fill * n if fill else _rand_bytes(rng, n)
    out[at : at + n] = run[: max(0, min(n, len(out) - at))]
    return bytes(out)


def truncate(data: bytes, rng: Rng) -> bytes:
    cut = rng.choice([rng.randrange(1, len(data)), rng.randrange(1, min(len(data), 300)), len(data) - 1,
                      len(data) // 2, 1, 8, 132])
    return data[: max(1, min(cut, len(data) - 1))]


def append(data: bytes, rng: Rng) -> bytes:
    junk = rng.choice([_rand_bytes(rng, rng.choice([1, 7, 512, 4096])), data[:1024], b"\x00" * 2048,
                       b"\xff\xd9" * 8, b"IEND" * 16])
    return data + junk


def splice(data: bytes, rng: Rng) -> bytes:
    """Insert random bytes, delete a span, or duplicate a span somewhere else."""
    a = _position(rng, len(data))
    n = rng.choice([1, 3, 16, 100, 1000])
    kind = rng.randrange(3)
    if kind == 0:
        return data[:a] + _rand_bytes(rng, n) + data[a:]
    if kind == 1:
        return data[:a] + data[a + n :]
    b = rng.randrange(len(data))
    return data[:b] + data[a : a + n] + data[b:]


# --------------------------------------------------------------------------------------------- PNG


def _png_chunks(data: bytes) -> list[tuple[int, int, bytes]]:
    """(offset, data length, type) of each chunk."""
    out, pos = [], 8
    while pos + 8 <= len(data):
        length = struct.unpack_from(">I", data, pos)[0]
        out.append((pos, length, data[pos + 4 : pos + 8]))
        pos += 12 + length
    return out


def _png_fix_crc(data: bytearray, offset: int, length: int) -> None:
    crc = zlib.crc32(bytes(data[offset + 4 : offset + 8 + length])) & 0xFFFFFFFF
    _put(data, offset + 8 + length, ">I", crc)


def png_ihdr(data: bytes, rng: Rng) -> bytes:
    """One IHDR field (width, height, bit depth, colour type, compression, filter, interlace), CRC fixed
    nine times in ten."""
    out = bytearray(data)
    field = rng.choice(["width", "height", "depth", "colour", "compression", "filter", "interlace"])
    if field in ("width", "height"):
        at = 16 if field == "width" else 20
        _put(out, at, ">I", _interesting(rng, 32, struct.unpack_from(">I", out, at)[0]))
    else:
        at = {"depth": 24, "colour": 25, "compression": 26, "filter": 27, "interlace": 28}[field]
        out[at] = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 255, rng.randrange(256)])
    if rng.random() < 0.9:
        _png_fix_crc(out, 8, 13)
    return bytes(out)


def png_dims(data: bytes, rng: Rng) -> bytes:
    out = bytearray(data)
    for at in rng.choice([(16,), (20,), (16, 20)]):
        _put(out, at, ">I", _absurd_dim(rng, 31, struct.unpack_from(">I", out, at)[0]))
    _png_fix_crc(out, 8, 13)
    return bytes(out)


def png_chunk(data: bytes, rng: Rng) -> bytes:
    """Corrupt a chunk with its CRC fixed (so zlib or the filter sees it), lie about a chunk length,
    drop IEND, or add a chunk (a duplicate IHDR, a palette, a text chunk that inflates to 8 MB)."""
    chunks = _png_chunks(data)
    out = bytearray(data)
    kind = rng.randrange(5)
    if kind == 0:
        idats = [c for c in chunks if c[2] == b"IDAT"] or chunks
        off, length, _ = rng.choice(idats)
        if length:
            at = off + 8 + rng.randrange(length)
            n = rng.choice([1, 4, 32])
            out[at : at + n] = _rand_bytes(rng, len(out[at : at + n]))
            _png_fix_crc(out, off, length)
        return bytes(out)
    if kind == 1:
        off, length, _ = rng.choice(chunks)
        _put(out, off, ">I", _interesting(rng, 32, length))
        return bytes(out)
    if kind == 2:
        return data[: chunks[-1][0]] if chunks and chunks[-1][2] == b"IEND" else data[:-12]

    def chunk(kind_: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind_ + body + struct.pack(">I", zlib.crc32(kind_ + body) & 0xFFFFFFFF)

    at = chunks[1][0] if len(chunks) > 1 else 33
    extra = rng.choice([
        chunk(b"IHDR", data[16:29]),
        chunk(b"PLTE", _rand_bytes(rng, rng.choice([3, 30, 768, 769]))),
        chunk(b"tRNS", _rand_bytes(rng, rng.choice([1, 2, 6, 300]))),
        chunk(b"zTXt", b"k\x00\x00" + zlib.compress(b"\x00" * 8_000_000, 9)),
        chunk(b"iCCP", b"p\x00\x00" + zlib.compress(_rand_bytes(rng, 200))),
    ])
    return data[:at] + extra + data[at:]


# -------------------------------------------------------------------------------------------- JPEG


def _jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(offset of the 0xFF, marker, segment length) of each marker segment up to and including SOS."""
    out, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        length = struct.unpack_from(">H", data, pos + 2)[0]
        out.append((pos, marker, length))
        if marker == 0xDA:
            break
        pos += 2 + length
    return out


def _jpeg_sof(data: bytes) -> int | None:
    for off, marker, _ in _jpeg_segments(data):
        if marker in (0xC0, 0xC1, 0xC2):
            return off
    return None


def jpeg_sof(data: bytes, rng: Rng) -> bytes:
    """One SOF field: precision, height, width, number of components, a sampling factor or a table id."""
    out = bytearray(data)
    sof = _jpeg_sof(data)
    if sof is None:
        return bitflip(data, rng)
    field = rng.choice(["precision", "height", "width", "components", "sampling", "table"])
    if field == "precision":
        out[sof + 4] = rng.choice([0, 1, 7, 8, 12, 16, 255])
    elif field in ("height", "width"):
        at = sof + (5 if field == "height" else 7)
        _put(out, at, ">H", _interesting(rng, 16, struct.unpack_from(">H", out, at)[0]))
    elif field == "components":
        out[sof + 9] = rng.choice([0, 1, 2, 3, 4, 5, 255])
    else:
        n = max(1, out[sof + 9])
        at = sof + 10 + 3 * rng.randrange(min(n, 4)) + (1 if field == "sampling" else 2)
        if at < len(out):
            out[at] = rng.choice([0x00, 0x11, 0x22, 0x44, 0x41, 0x14, 0xFF, 0x03, rng.randrange(256)])
    return bytes(out)


def jpeg_dims(data: bytes, rng: Rng) -> bytes:
    out = bytearray(data)
    sof = _jpeg_sof(data)
    if sof is None:
        return bitflip(data, rng)
    for at in rng.choice([(sof + 5,), (sof + 7,), (sof + 5, sof + 7)]):
        _put(out, at, ">H", _absurd_dim(rng, 16, struct.unpack_from(">H", out, at)[0]))
    return bytes(out)


def jpeg_segment(data: bytes, rng: Rng) -> bytes:
    """Lie about a segment's length, scribble in a table (DQT/DHT/SOS), drop a segment, or cut the
    entropy-coded data / the EOI marker."""
    segments = _jpeg_segments(data)
    if not segments:
        return bitflip(data, rng)
    off, _marker, length = rng.choice(segments)
    kind = rng.randrange(4)
    out = bytearray(data)
    if kind == 0:
        _put(out, off + 2, ">H", rng.choice([0, 1, 2, 3, length - 1, length + 1, 0xFFFF, rng.randrange(0x10000)]))
        return bytes(out)
    if kind == 1:
        start = off + 4
        n = max(1, min(rng.choice([1, 2, 8, 64]), length - 2))
        at = start + rng.randrange(max(1, length - 2))
        out[at : at + n] = _rand_bytes(rng, len(out[at : at + n]))
        return bytes(out)
    if kind == 2:
        return data[:off] + data[off + 2 + length :]
    sos_end = segments[-1][0] + 2 + segments[-1][2]
    return data[: rng.randrange(sos_end, len(data))] if rng.random() < 0.5 else data[:-2]


# -------------------------------------------------------------------------------------------- TIFF

TIFF_TAGS = {256: "ImageWidth", 257: "ImageLength", 258: "BitsPerSample", 259: "Compression",
             262: "Photometric", 273: "StripOffsets", 277: "SamplesPerPixel", 278: "RowsPerStrip",
             279: "StripByteCounts", 284: "PlanarConfiguration", 339: "SampleFormat", 317: "Predictor"}
TIFF_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8}


def _tiff_entries(data: bytes) -> tuple[int, list[int]]:
    """The first IFD's offset and the offsets of its 12-byte entries (little-endian classic TIFF)."""
    ifd = struct.unpack_from("<I", data, 4)[0]
    count = struct.unpack_from("<H", data, ifd)[0]
    return ifd, [ifd + 2 + 12 * i for i in range(count)]


def _tiff_set(out: bytearray, entry: int, value: int, rng: Rng) -> None:
    """Set an entry's value: inline, or one element of the array it points to."""
    typ, count = struct.unpack_from("<HI", out, entry + 2)
    size = TIFF_TYPE_SIZE.get(typ, 4)
    fmt = {1: "<B", 2: "<B", 3: "<H", 4: "<I", 8: "<H", 9: "<I"}.get(typ, "<I")
    if size * count <= 4:
        _put(out, entry + 8, fmt, value)
    else:
        base = struct.unpack_from("<I", out, entry + 8)[0]
        _put(out, base + size * rng.randrange(max(1, min(count, 1 << 16))), fmt, value)


def tiff_tag(data: bytes, rng: Rng) -> bytes:
    """A value, the type or the count of one IFD entry (mostly the tags a decoder needs)."""
    out = bytearray(data)
    _ifd, entries = _tiff_entries(data)
    known = [e for e in entries if struct.unpack_from("<H", data, e)[0] in TIFF_TAGS]
    entry = rng.choice(known if known and rng.random() < 0.85 else entries)
    tag = struct.unpack_from("<H", data, entry)[0]
    part = rng.choice(["value", "value", "value", "type", "count"])
    if part == "type":
        _put(out, entry + 2, "<H", rng.choice([0, 1, 2, 3, 4, 5, 7, 11, 12, 13, 16, 17, 18, 0xFFFF]))
    elif part == "count":
        _put(out, entry + 4, "<I", _interesting(rng, 32, struct.unpack_from("<I", data, entry + 4)[0]))
    else:
        special = {258: [0, 1, 2, 4, 7, 12, 16, 24, 32, 64, 128], 259: [0, 1, 2, 5, 6, 7, 8, 32773, 34712, 50000],
                   262: [0, 1, 2, 3, 4, 5, 6, 8, 32844], 277: [0, 1, 2, 3, 4, 5, 255], 284: [0, 1, 2, 3],
                   339: [0, 1, 2, 3, 4, 5, 6], 317: [0, 1, 2, 3, 34892]}
        value = rng.choice(special[tag]) if tag in special and rng.random() < 0.7 else _interesting(rng, 32)
        _tiff_set(out, entry, value, rng)
    return bytes(out)


def tiff_dims(data: bytes, rng: Rng) -> bytes:
    out = bytearray(data)
    _ifd, entries = _tiff_entries(data)
    for entry in entries:
        tag = struct.unpack_from("<H", data, entry)[0]
        if tag in (256, 257) and rng.random() < 0.7:
            typ = struct.unpack_from("<H", data, entry + 2)[0]
            old = struct.unpack_from("<H" if typ == 3 else "<I", data, entry + 8)[0]
            _tiff_set(out, entry, _absurd_dim(rng, 16 if typ == 3 else 32, old), rng)
    return bytes(out)


def tiff_ifd(data: bytes, rng: Rng) -> bytes:
    """The header's IFD offset, the entry count, the next-IFD link (to itself: a loop), or swapped
    entries (tags out of order)."""
    out = bytearray(data)
    ifd, entries = _tiff_entries(data)
    kind = rng.randrange(4)
    if kind == 0:
        _put(out, 4, "<I", rng.choice([0, 1, 8, ifd + 1, len(data), len(data) + 100, 0xFFFFFFFF,
                                       rng.randrange(len(data))]))
    elif kind == 1:
        _put(out, ifd, "<H", _interesting(rng, 16, len(entries)))
    elif kind == 2:
        link = ifd + 2 + 12 * len(entries)
        _put(out, link, "<I", rng.choice([ifd, 8, link, rng.randrange(len(data)), 0xFFFFFFFF]))
    elif len(entries) > 1:
        a, b = rng.sample(entries, 2)
        out[a : a + 12], out[b : b + 12] = data[b : b + 12], data[a : a + 12]
    return bytes(out)


# --------------------------------------------------------------------------------------------- BMP

BMP_FIELDS = {"file_size": (2, "<I"), "pixel_offset": (10, "<I"), "dib_size": (14, "<I"), "planes": (26, "<H"),
              "bpp": (28, "<H"), "compression": (30, "<I"), "image_size": (34, "<I"), "colours_used": (46, "<I"),
              "colours_important": (50, "<I")}


def bmp_header(data: bytes, rng: Rng) -> bytes:
    out = bytearray(data)
    field = rng.choice(list(BMP_FIELDS))
    at, fmt = BMP_FIELDS[field]
    special = {"bpp": [0, 1, 2, 4, 8, 15, 16, 24, 32, 48, 64, 0xFFFF], "compression": [0, 1, 2, 3, 4, 5, 6, 11, 99],
               "dib_size": [0, 12, 16, 40, 52, 56, 64, 108, 124, 0xFFFFFFFF], "planes": [0, 1, 2, 0xFFFF]}
    old = struct.unpack_from(fmt, data, at)[0]
    value = rng.choice(special[field]) if field in special and rng.random() < 0.7 else \
        _interesting(rng, 8 * struct.calcsize(fmt), old)
    _put(out, at, fmt, value)
    return bytes(out)


def bmp_dims(data: bytes, rng: Rng) -> bytes:
    out = bytearray(data)
    for at in rng.choice([(18,), (22,), (18, 22)]):
        old = struct.unpack_from("<i", data, at)[0]
        value = _absurd_dim(rng, 31, abs(old))
        if rng.random() < 0.3:
            value = -value  # a negative height is a top-down bitmap; a negative width is nonsense
        _put(out, at, "<i", value)
    return bytes(out)


# ------------------------------------------------------------------------------------------- DICOM

LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
UNDEFINED = 0xFFFFFFFF


@dataclass
class Element:
    tag: int
    vr: bytes
    value: bytes
    undefined_length: bool = False


def dicom_parse(data: bytes) -> list[Element]:
    """The top-level elements of an explicit-VR little-endian DICOM file (what :func:`dicom_bytes` writes;
    encapsulated pixel data, the last element, is kept whole)."""
    out, pos = [], 132
    while pos + 8 <= len(data):
        group, elem = struct.unpack_from("<HH", data, pos)
        vr = data[pos + 4 : pos + 6]
        if vr in LONG_VRS:
            length, head = struct.unpack_from("<I", data, pos + 8)[0], 12
        else:
            length, head = struct.unpack_from("<H", data, pos + 6)[0], 8
        if length == UNDEFINED:
            out.append(Element((group << 16) | elem, vr, data[pos + head :], True))
            break
        out.append(Element((group << 16) | elem, vr, data[pos + head : pos + head + length]))
        pos += head + length
    return out


def dicom_write(elements: list[Element], fix_group_length: bool = True) -> bytes:
    """Elements back to a file: 128-byte preamble, ``DICM``, the elements in the order given."""
    if fix_group_length:
        meta = sum(_dicom_element_size(e) for e in elements if e.tag >> 16 == 2 and e.tag != 0x00020000)
        for e in elements:
            if e.tag == 0x00020000:
                e.value = struct.pack("<I", meta)
    parts = [b"\x00" * 128, b"DICM"]
    for e in elements:
        head = struct.pack("<HH", e.tag >> 16, e.tag & 0xFFFF) + e.vr
        length = UNDEFINED if e.undefined_length else len(e.value)
        if e.vr in LONG_VRS or e.undefined_length:
            parts.append(head + b"\x00\x00" + struct.pack("<I", length & 0xFFFFFFFF) + e.value)
        else:
            parts.append(head + struct.pack("<H", min(length, 0xFFFF)) + e.value[:0xFFFF])
    return b"".join(parts)


def _dicom_element_size(e: Element) -> int:
    return (12 if e.vr in LONG_VRS else 8) + len(e.value)


def text_value(value: str, pad: bytes = b" ") -> bytes:
    raw = value.encode("latin-1")
    return raw + pad if len(raw) % 2 else raw


def set_element(elements: list[Element], tag: int, vr: bytes, value: bytes) -> None:
    """Replace the element ``tag`` (value and VR), or insert it in tag order."""
    for e in elements:
        if e.tag == tag:
            e.vr, e.value = vr, value
            return
    at = next((i for i, e in enumerate(elements) if e.tag > tag), len(elements))
    elements.insert(at, Element(tag, vr, value))


US_ATTRS = {"Rows": 0x00280010, "Columns": 0x00280011, "BitsAllocated": 0x00280100, "BitsStored": 0x00280101,
            "HighBit": 0x00280102, "SamplesPerPixel": 0x00280002, "PixelRepresentation": 0x00280103,
            "PlanarConfiguration": 0x00280006}
TEXT_ATTRS: dict[str, tuple[int, bytes, list[str]]] = {
    "PhotometricInterpretation": (0x00280004, b"CS", ["MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL",
                                                      "YBR_FULL_422", "PALETTE COLOR", "ARGB", "CMYK", "HSV",
                                                      "XYZ", "", "MONOCHROME2\\RGB", "monochrome2"]),
    "NumberOfFrames": (0x00280008, b"IS", ["0", "-1", "1", "2", "3", "4", "1000", "1000000", "2147483647",
                                           "99999999999", "abc", "", "1.5", "3\\3", " 3"]),
    "WindowCenter": (0x00281050, b"DS", ["0", "-1", "nan", "inf", "-inf", "1e308", "abc", "", "40\\80"]),
    "WindowWidth": (0x00281051, b"DS", ["0", "-1", "1", "nan", "inf", "1e308", "abc", "", "0\\0"]),
    "RescaleSlope": (0x00281053, b"DS", ["0", "-1", "nan", "inf", "1e308", "1e-308", "abc", ""]),
    "RescaleIntercept": (0x00281052, b"DS", ["-1024", "nan", "inf", "1e308", "abc", ""]),
}
SPACING_TAG = 0x00280030
PIXEL_DATA_TAG = 0x7FE00010
TRANSFER_SYNTAX_TAG = 0x00020010
TRANSFER_SYNTAXES = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99",
                     "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
                     "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.201", "1.2.3.4", "",
                     "garbage", "1.2.840.10008.1.2.1\x00\x00"]


def _garbage_vr(rng: Rng) -> bytes:
    return rng.choice([b"ZZ", b"\x00\x00", b"  ", b"ds", b"UN", b"OB", b"SQ", b"US", b"FD", b"AT",
                       bytes([rng.randrange(256), rng.randrange(256)])])


def dicom_attr(data: bytes, rng: Rng) -> bytes:
    """An image attribute (Rows, Columns, BitsAllocated, BitsStored, HighBit, SamplesPerPixel,
    PixelRepresentation, PlanarConfiguration, PhotometricInterpretation, NumberOfFrames, the VOI window,
    the rescale) set to an interesting or garbage value, sometimes with the wrong VR."""
    elements = dicom_parse(data)
    name = rng.choice(list(US_ATTRS) + list(TEXT_ATTRS))
    if name in US_ATTRS:
        value = _interesting(rng, 16)
        if rng.random() < 0.15:
            set_element(elements, US_ATTRS[name], b"UL", struct.pack("<I", _interesting(rng, 32)))
        else:
            set_element(elements, US_ATTRS[name], b"US", struct.pack("<H", value))
    else:
        tag, vr, choices = TEXT_ATTRS[name]
        raw = rng.choice(choices) if rng.random() < 0.85 else _rand_bytes(rng, rng.choice([1, 2, 9])).decode("latin-1")
        set_element(elements, tag, _garbage_vr(rng) if rng.random() < 0.1 else vr, text_value(raw))
    return dicom_write(elements)


def dicom_dims(data: bytes, rng: Rng) -> bytes:
    """Absurd Rows, Columns and/or NumberOfFrames."""
    elements = dicom_parse(data)
    for name in rng.choice([("Rows",), ("Columns",), ("Rows", "Columns"), ("NumberOfFrames",)]):
        if name == "NumberOfFrames":
            frames = rng.choice([0, 2, 64, 65535, 10**6, 2**31 - 1, 10**12])
            set_element(elements, 0x00280008, b"IS", text_value(str(frames)))
        else:
            old = next((struct.unpack("<H", e.value[:2])[0] for e in elements if e.tag == US_ATTRS[name]), 100)
            set_element(elements, US_ATTRS[name], b"US", struct.pack("<H", _absurd_dim(rng, 16, old)))
    return dicom_write(elements)


def dicom_spacing(data: bytes, rng: Rng) -> bytes:
    """PixelSpacing with a corrupt value representation, or a garbage value."""
    elements = dicom_parse(data)
    current = next((e for e in elements if e.tag == SPACING_TAG), None)
    value = current.value if current is not None else text_value("0.1\\0.1")
    if rng.random() < 0.5:
        set_element(elements, SPACING_TAG, _garbage_vr(rng), value)
    else:
        raw = rng.choice(["abc\\def", "nan\\nan", "inf\\1", "-1\\-1", "0\\0", "", "1e400\\1", "0.1", "\\",
                          "0.1\\0.1\\0.1", "1,5\\1,5", "0x10\\1", "\x00\xff", "9" * 64])
        set_element(elements, SPACING_TAG, b"DS", text_value(raw))
    return dicom_write(elements)


def dicom_syntax(data: bytes, rng: Rng) -> bytes:
    """Another TransferSyntaxUID (implicit VR, big endian, deflated, JPEG family, RLE, unknown, garbage)."""
    elements = dicom_parse(data)
    set_element(elements, TRANSFER_SYNTAX_TAG, b"UI", text_value(rng.choice(TRANSFER_SYNTAXES), b"\x00"))
    return dicom_write(elements)


def dicom_pixeldata(data: bytes, rng: Rng) -> bytes:
    """PixelData cut, padded, made odd or empty, given another VR, or an undefined length; or a scribble
    inside encapsulated fragments."""
    elements = dicom_parse(data)
    pixel = next((e for e in elements if e.tag == PIXEL_DATA_TAG), None)
    if pixel is None:
        return bitflip(data, rng)
    kind = rng.randrange(6)
    n = len(pixel.value)
    if kind == 0:
        pixel.value = pixel.value[: rng.choice([0, 1, 2, 3, n // 2, n - 1, n - 2, rng.randrange(n)])]
    elif kind == 1:
        pixel.value += _rand_bytes(rng, rng.choice([1, 2, 64, 4096]))
    elif kind == 2:
        pixel.vr = rng.choice([b"OB", b"OW", b"UN", b"OF", b"OD", b"SQ", b"ZZ"])
    elif kind == 3:
        pixel.undefined_length = not pixel.undefined_length
    elif kind == 4 and pixel.undefined_length:
        at = rng.randrange(min(n, 64))  # the item tags and offset table at the start
        pixel.value = pixel.value[:at] + _rand_bytes(rng, 4) + pixel.value[at + 4 :]
    else:
        at = rng.randrange(n)
        pixel.value = pixel.value[:at] + _rand_bytes(rng, rng.choice([1, 8, 64])) + pixel.value[at + 8 :]
    return dicom_write(elements)


def dicom_vr(data: bytes, rng: Rng) -> bytes:
    """A corrupt value representation on any element (pydicom reads these lazily)."""
    elements = dicom_parse(data)
    target = rng.choice([e for e in elements if e.tag != PIXEL_DATA_TAG] or elements)
    target.vr = _garbage_vr(rng)
    return dicom_write(elements, fix_group_length=rng.random() < 0.8)


# -------------------------------------------------------------------------------------------- registry

ALL = tuple(SEEDS)
Mutation = Callable[[bytes, Rng], bytes]
#: mutation name -> (seed formats it applies to, function)
MUTATIONS: dict[str, tuple[tuple[str, ...], Mutation]] = {
    "bitflip": (ALL, bitflip),
    "byterun": (ALL, byterun),
    "truncate": (ALL, truncate),
    "append": (ALL, append),
    "splice": (ALL, splice),
    "png-ihdr": (PNG, png_ihdr),
    "png-dims": (PNG, png_dims),
    "png-chunk": (PNG, png_chunk),
    "jpeg-sof": (JPEG, jpeg_sof),
    "jpeg-dims": (JPEG, jpeg_dims),
    "jpeg-segment": (JPEG, jpeg_segment),
    "tiff-tag": (TIFF, tiff_tag),
    "tiff-dims": (TIFF, tiff_dims),
    "tiff-ifd": (TIFF, tiff_ifd),
    "bmp-header": (BMP, bmp_header),
    "bmp-dims": (BMP, bmp_dims),
    "dicom-attr": (DICOM, dicom_attr),
    "dicom-dims": (DICOM, dicom_dims),
    "dicom-spacing": (DICOM, dicom_spacing),
    "dicom-syntax": (DICOM, dicom_syntax),
    "dicom-pixeldata": (DICOM, dicom_pixeldata),
    "dicom-vr": (DICOM, dicom_vr),
}


def mutate(seeds: dict[str, bytes], case: Case) -> bytes:
    """The bytes of ``case``: its mutation applied to its seed file, seeded by the case id."""
    rng = random.Random(case.id)
    return MUTATIONS[case.mutation][1](seeds[case.fmt], rng)


# ------------------------------------------------------------------------------------------ watchdog


class CaseTimeout(BaseException):
    """A case ran past its time limit (a BaseException, so no ``except Exception`` swallows it)."""


@contextlib.contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Raise :class:`CaseTimeout` in the main thread when the block runs past ``seconds``."""

    def expired(_signum: int, _frame: object) -> None:
        raise CaseTimeout(f"{what} ran past {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


if __name__ == "__main__":  # PYTHONPATH=src python tests/fuzzing.py CASE_ID OUTPUT_FILE
    case = Case.parse(sys.argv[1])
    image, source = source_image()
    Path(sys.argv[2]).write_bytes(mutate(make_seeds(image), case))
    print(f"wrote {sys.argv[2]} ({case.id}, seed file made from the {source})")
