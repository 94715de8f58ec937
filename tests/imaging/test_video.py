"""Frame readers on real clips: pydicom's 30-frame SonoSite cine (JPEG baseline, YBR_FULL_422), multi-frame
DICOM written here from the bundled example images (uncompressed and RLE), videos written by OpenCV, a
multi-page TIFF, a folder of numbered frames, and bad inputs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
import tifffile
from pydicom import examples
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, UltrasoundMultiFrameImageStorage, generate_uid

from fetalscope.errors import BadInputError, PayloadTooLargeError
from fetalscope.imaging.loader import load_image
from fetalscope.imaging.video import VideoLimits, effective_stride, open_frames

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "fetalscope" / "serve" / "examples"
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _example_frames(n: int = 12, size: tuple[int, int] = (160, 128)) -> list[np.ndarray]:
    """``n`` RGB frames cycling through the bundled example images, resized to ``size`` (w, h)."""
    stills = [cv2.resize(load_image(p).pixels, size) for p in sorted(EXAMPLES.glob("*.png"))]
    return [stills[i % len(stills)] for i in range(n)]


def _write_video(path: Path, frames: list[np.ndarray], fourcc: str, fps: float = 10.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _cine_dicom(path: Path, frames: list[np.ndarray], *, rle: bool = False, frame_time_ms: float = 40.0) -> Path:
    grey = np.stack([f[..., 0] for f in frames])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, "US"
    ds.Rows, ds.Columns = grey.shape[1:]
    ds.NumberOfFrames = len(frames)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.FrameTime = f"{frame_time_ms}"
    ds.PixelSpacing = ["0.2", "0.2"]
    ds.PixelData = grey.tobytes()
    if rle:
        ds.compress(RLELossless)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_sonosite_ybr_cine_has_colours_rate_and_calibration() -> None:
    path = examples.get_path("ybr_color")
    source = open_frames(path)
    info = source.info
    assert (info.n_frames, info.width, info.height, info.format) == (30, 320, 240, "DICOM")
    assert info.meta["photometric"] == "YBR_FULL_422"
    assert info.fps == pytest.approx(1000 / 33.333, rel=1e-4)  # FrameTime 33.333 ms
    # PhysicalDeltaX 0.05105 cm per pixel in the 2D region -> mm
    assert info.pixel_spacing_source == "SequenceOfUltrasoundRegions"
    assert info.pixel_spacing_mm == pytest.approx(0.5104970559, rel=1e-6)
    frames = list(source.frames())
    reference = pydicom.dcmread(path).pixel_array  # pydicom's own YBR -> RGB
    assert [f.index for f in frames] == list(range(30))
    assert frames[-1].time_s == pytest.approx(29 * 0.033333, rel=1e-4)
    for f in frames:
        assert np.array_equal(f.pixels, reference[f.index])
    px = frames[15].pixels.astype(int)
    # a grey B-mode cine: the channels agree (undecoded YBR would put chroma near 128 in G and B: green/purple)
    assert np.abs(px[..., 0] - px[..., 1]).mean() < 3 and np.abs(px[..., 1] - px[..., 2]).mean() < 3
    assert px.mean() > 10


@pytest.mark.parametrize("rle", [False, True])
def test_multiframe_dicom_uncompressed_and_rle(tmp_path: Path, rle: bool) -> None:
    frames = _example_frames(8)
    source = open_frames(_cine_dicom(tmp_path / "cine.dcm", frames, rle=rle))
    assert source.info.fps == pytest.approx(25.0) and source.info.pixel_spacing_mm == pytest.approx(0.2)
    assert source.info.pixel_spacing_source == "PixelSpacing"
    got = list(source.frames(stride=3))
    assert [f.index for f in got] == [0, 3, 6]
    assert [f.time_s for f in got] == pytest.approx([0.0, 0.12, 0.24])
    for f in got:
        assert np.array_equal(f.pixels[..., 0], frames[f.index][..., 0])


@pytest.mark.parametrize(("suffix", "fourcc"), [(".avi", "MJPG"), (".mp4", "mp4v")])
def test_video_files_frames_times_budget_and_reread(tmp_path: Path, suffix: str, fourcc: str) -> None:
    frames = _example_frames(20)
    path = _write_video(tmp_path / f"clip{suffix}", frames, fourcc, fps=10.0)
    for src in (path, path.read_bytes()):  # a path, or the bytes of an upload (decoded in memory)
        source = open_frames(src, name=path.name)
        assert (source.info.n_frames, source.info.fps, source.info.width, source.info.height) == (20, 10.0, 160, 128)
        got = list(source.frames(stride=1, max_frames=5))  # the budget raises the stride to 4
        assert [f.index for f in got] == [0, 4, 8, 12, 16]
        assert [f.time_s for f in got] == pytest.approx([0.0, 0.4, 0.8, 1.2, 1.6])
        for f in got:  # lossy, but the frame shown is the one written
            errors = [np.abs(f.pixels.astype(int) - s).mean() for s in frames[:6]]
            assert int(np.argmin(errors)) == f.index % 6 and min(errors) < 6
        again = source.read([16, 4])
        assert sorted(again) == [4, 16] and np.array_equal(again[16].pixels, got[-1].pixels)


def test_multipage_tiff_and_numbered_folder(tmp_path: Path) -> None:
    frames = _example_frames(11)
    tifffile.imwrite(tmp_path / "cine.tif", np.stack(frames), photometric="rgb")
    source = open_frames(tmp_path / "cine.tif", fps=5)
    got = list(source.frames())
    assert source.info.format == "TIFF" and len(got) == 11 and got[2].time_s == pytest.approx(0.4)
    assert all(np.array_equal(f.pixels, frames[f.index]) for f in got)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"frame{i}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    got = list(open_frames(folder).frames())
    assert [f.index for f in got] == list(range(11)) and got[0].time_s is None
    assert np.array_equal(got[10].pixels, frames[10])  # frame10 after frame9, not after frame1


def test_effective_stride() -> None:
    assert effective_stride(100, 1, 600) == 1
    assert effective_stride(36_000, 1, 600) == 60
    assert effective_stride(100, 7, 50) == 7
    with pytest.raises(BadInputError, match="stride"):
        effective_stride(10, 0)


def test_bad_clips_are_refused_clearly(tmp_path: Path) -> None:
    path = _write_video(tmp_path / "clip.mp4", _example_frames(10), "mp4v")
    data = path.read_bytes()
    with pytest.raises(BadInputError, match="cut.mp4: not a readable video"):
        open_frames(data[: len(data) // 3], name="cut.mp4")
    with pytest.raises(BadInputError, match="empty"):
        open_frames(b"", name="empty.mp4")
    with pytest.raises(BadInputError, match="not a readable video"):
        open_frames(np.random.default_rng(0).bytes(5000), name="noise.mp4")
    with pytest.raises(BadInputError, match="single still image"):
        open_frames(EXAMPLES / "phantom_fetal_brain.png")
    with pytest.raises(PayloadTooLargeError, match="pixels, over the limit"):
        open_frames(path, limits=VideoLimits(max_pixels=100 * 100))
    with pytest.raises(PayloadTooLargeError, match="10 frames, over the limit of 5"):
        open_frames(path, limits=VideoLimits(max_frames=5))
    with pytest.raises(PayloadTooLargeError, match="lasts 1 s, over the limit"):
        open_frames(path, limits=VideoLimits(max_duration_s=0.5))
    with pytest.raises(BadInputError, match="no image frames"):
        open_frames(tmp_path / "nothing" if (tmp_path / "nothing").mkdir() is None else tmp_path)
    dicom = _cine_dicom(tmp_path / "cine.dcm", _example_frames(4)).read_bytes()
    with pytest.raises(BadInputError, match="cine.dcm"):
        list(open_frames(dicom[: len(dicom) - 30000], name="cine.dcm").frames())
