"""The DICOM and FHIR outputs of ``fetalscope measure`` and ``predict`` (``--sr DIR``, ``--overlay``, ``--seg``,
``--fhir DIR``): one call per result, writing through :mod:`fetalscope.interop`. An input that is not DICOM, or
a result with nothing to report, gets a note on the console, not an error for the whole run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fetalscope.cli.common import console, one_line
from fetalscope.errors import BadInputError, UnsupportedError

if TYPE_CHECKING:  # numpy stays out of `fetalscope models`' imports
    import numpy as np

# the options `measure` and `predict` share
SrOpt = Annotated[Path | None, typer.Option("--sr", help="Folder for a DICOM SR (TID 1500) per DICOM input, filed "
                                                         "with the source study (other inputs get a note).")]
OverlayOpt = Annotated[bool, typer.Option("--overlay", help="With --sr: also a colour presentation state drawing "
                                                            "the ellipses and boxes over the source.")]
SegOpt = Annotated[bool, typer.Option("--seg", help="With --sr: also a DICOM Segmentation of the measured regions.")]
FhirOpt = Annotated[Path | None, typer.Option("--fhir", help="Folder for a FHIR DiagnosticReport bundle (JSON) per "
                                                             "input.")]
CaptureOpt = Annotated[bool, typer.Option("--capture", help="With --sr: also the drawing as a Secondary Capture "
                                                            "(a fallback for viewers without SR).")]


def drawing_colours() -> dict[str, tuple[int, int, int]]:
    """The colours fetalscope draws with (measurement structures, detection labels), for presentation states."""
    from fetalscope.biometry.measure import COLOURS as MEASURE_COLOURS
    from fetalscope.detect.api import COLOURS as DETECT_COLOURS

    return {**MEASURE_COLOURS, **DETECT_COLOURS}


@dataclass
class DicomOutputs:
    """What to write per result: an SR (and with ``overlay`` a presentation state, with ``seg`` a Segmentation)
    into ``sr``, the FHIR bundle into ``fhir``. ``written`` counts the files by kind."""

    sr: Path | None = None
    fhir: Path | None = None
    overlay: bool = False
    seg: bool = False
    capture: bool = False
    written: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.overlay or self.seg or self.capture) and self.sr is None:
            raise BadInputError("--overlay, --seg and --capture write beside the SR: give --sr DIR too")
        for option, folder in (("--sr", self.sr), ("--fhir", self.fhir)):
            if folder is not None and folder.exists() and not folder.is_dir():
                raise BadInputError(f"{option} must be a folder, and {folder} is a file")
        if self.wanted:
            from fetalscope.interop import require

            require(*(["highdicom"] if self.sr else []), *(["fhir.resources"] if self.fhir else []))

    @property
    def wanted(self) -> bool:
        return self.sr is not None or self.fhir is not None

    def write(self, result: Any, path: Path, frame: int | None = None,
              drawing: Callable[[], np.ndarray] | None = None) -> None:
        """Write the outputs asked for of ``result`` (an ``Analysis`` or a measurement record) made on ``path``;
        ``drawing`` gives the drawn image for ``capture``."""
        if not self.wanted:
            return
        from fetalscope.interop.source import read_source

        try:
            source = read_source(path, frame)
        except BadInputError as exc:
            source = None
            if self.sr is not None:
                self._note(f"no DICOM outputs for {path.name}: {exc}")
        if source is not None and self.sr is not None:
            from fetalscope.interop.dicom_sr import write_sr

            self._try("SR", lambda: write_sr(result, source.header, self.sr, frame=frame, name=path.stem), path)
            if self.overlay:
                from fetalscope.interop.dicom_pr import write_presentation_state

                self._try("presentation state", lambda: write_presentation_state(
                    result, source.header, self.sr, frame=frame, colours=drawing_colours(), name=path.stem), path)
            if self.seg:
                from fetalscope.interop.dicom_seg import write_segmentation

                self._try("segmentation", lambda: write_segmentation(
                    result, source.header, self.sr, frame=frame, name=path.stem), path)
            if self.capture and drawing is not None:
                from fetalscope.interop.dicom_sc import write_secondary_capture

                self._try("secondary capture", lambda: write_secondary_capture(
                    drawing(), source.header, self.sr, frame=frame, name=path.stem), path)
        if self.fhir is not None:
            from fetalscope.interop.fhir import write_fhir

            self._try("FHIR", lambda: write_fhir(result, self.fhir, source=None if source is None else source.header,
                                                 name=path.stem), path)

    def summary(self) -> str:
        return ", ".join(f"{n} {kind}" for kind, n in self.written.items())

    def _try(self, kind: str, write: Any, path: Path) -> None:
        try:
            write()
        except (BadInputError, UnsupportedError) as exc:
            self._note(f"no {kind} for {path.name}: {exc}")
            return
        self.written[kind] = self.written.get(kind, 0) + 1

    @staticmethod
    def _note(text: str) -> None:
        console.print(f"[yellow]note[/] {one_line(text)}", highlight=False)
