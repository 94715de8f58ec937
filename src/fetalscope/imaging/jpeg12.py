"""GDCM as a pydicom decoding plugin for *JPEG Extended* (Process 2 & 4) pixel data with 12-bit samples.

pydicom 3's own GDCM plugin refuses 12-bit JPEG Extended, and the only other plugin that decodes it
(pylibjpeg-libjpeg) is GPL-3.0, which this Apache-2.0 product does not depend on. GDCM itself decodes it:
its libjpeg is built for 8, 12 and 16 bits, and it retries with the 12-bit build when the first one says
"Unsupported JPEG data precision 12" (printed on stderr by the C library; harmless). Checked against
pylibjpeg-libjpeg on pydicom's ``JPGExtended.dcm``: at most 1 of 4096 grey levels apart (two lossy IDCTs).

:func:`register` adds the plugin once, after pydicom's own plugins for that transfer syntax.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from pydicom import uid

PLUGIN = "fetalscope-gdcm-12bit"
DECODER_DEPENDENCIES = {uid.JPEGExtended12Bit: ("gdcm>=3.0.10",)}

_lock = threading.Lock()
_registered = False


def is_available(transfer_syntax: str) -> bool:
    """pydicom's plugin interface: can this plugin decode ``transfer_syntax`` here?"""
    if transfer_syntax not in DECODER_DEPENDENCIES:
        return False
    try:
        import gdcm  # noqa: F401
    except ImportError:
        return False
    return True


def _decode_frame(src: bytes, runner: Any) -> bytes:
    """pydicom's plugin interface: one encoded frame to its decoded bytes (two per sample)."""
    import gdcm

    if runner.bits_stored <= 8 or runner.bits_allocated != 16:
        raise ValueError("only 12-bit samples in 16-bit containers (8-bit JPEG Extended is for pydicom's plugins)")
    fragment = gdcm.Fragment()
    fragment.SetByteStringValue(src)
    fragments = gdcm.SequenceOfFragments.New()
    fragments.AddFragment(fragment)
    element = gdcm.DataElement(gdcm.Tag(0x7FE0, 0x0010))
    element.SetValue(fragments.__ref__())
    image = gdcm.Image()
    image.SetNumberOfDimensions(2)
    image.SetDimensions((runner.columns, runner.rows, 1))
    image.SetDataElement(element)
    photometric = gdcm.PhotometricInterpretation.GetPIType(str(runner.photometric_interpretation))
    image.SetPhotometricInterpretation(gdcm.PhotometricInterpretation(photometric))
    if runner.samples_per_pixel > 1:
        image.SetPlanarConfiguration(runner.planar_configuration)
    image.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.GetTSType(str.__str__(uid.JPEGExtended12Bit))))
    bits = runner.bits_stored
    image.SetPixelFormat(gdcm.PixelFormat(runner.samples_per_pixel, 16, bits, bits - 1, runner.pixel_representation))
    buffer = image.GetBuffer()
    if not buffer:
        raise ValueError("GDCM could not decode this 12-bit JPEG Extended frame")
    frame = buffer.encode("utf-8", "surrogateescape")  # GDCM returns char* as str
    expected = runner.rows * runner.columns * runner.samples_per_pixel * 2
    if len(frame) != expected:
        raise ValueError(f"GDCM decoded {len(frame)} bytes, {expected} expected")
    return frame


def register() -> None:
    """Add the plugin to pydicom's JPEG Extended decoder (once; safe to call from any thread)."""
    global _registered
    with _lock:
        if _registered:
            return
        from pydicom.pixels.decoders.base import get_decoder

        decoder = get_decoder(uid.JPEGExtended12Bit)
        if PLUGIN not in decoder.available_plugins:
            with contextlib.suppress(ValueError):  # already there (as unavailable: GDCM not installed)
                decoder.add_plugin(PLUGIN, (__name__, "_decode_frame"))
        _registered = True
