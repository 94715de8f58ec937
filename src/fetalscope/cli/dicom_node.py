"""`fetalscope dicom-node`: a DICOM node that receives images by C-STORE, analyses each one and sends the
Structured Report (and with ``--overlay`` the presentation state) by C-STORE and/or DICOMweb STOW-RS."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from fetalscope.cli.common import friendly_errors, split_list

ModelOpt = Annotated[str, typer.Option("--model", "--models", "-m", help="Plane model: bundled name or bundle "
                                                                         "folder.")]


@friendly_errors
def dicom_node(
    ae_title: Annotated[str, typer.Option("--ae-title", help="This node's AE title.")] = "FETALSCOPE",
    port: Annotated[int, typer.Option(help="DICOM port to listen on.")] = 11112,
    bind: Annotated[str, typer.Option(help="Interface to listen on (default loopback only).")] = "127.0.0.1",
    forward: Annotated[str | None, typer.Option(
        metavar="AE@HOST:PORT", help="Send every result by C-STORE to this node (e.g. a PACS).")] = None,
    peer: Annotated[list[str] | None, typer.Option(
        "--peer", metavar="AE@HOST:PORT", help="A known node (repeatable): without --forward, the results of "
        "images it sends go back to it.")] = None,
    stow: Annotated[str | None, typer.Option(
        metavar="URL", help="Also (or only) send results by DICOMweb STOW-RS to this studies URL, e.g. "
        "http://pacs:8042/dicom-web/studies.")] = None,
    allow: Annotated[str | None, typer.Option(
        metavar="AE[,AE]", help="Accept associations only from these calling AE titles (default: any).")] = None,
    measure: Annotated[str, typer.Option(help="auto (head on brain, CTR on thorax images) | head | "
                                              "cardiothoracic.")] = "auto",
    overlay: Annotated[bool, typer.Option("--overlay", help="Also send a colour softcopy presentation state "
                                                            "drawing the ellipses and boxes.")] = False,
    model: ModelOpt = "sononet-planes",
    runtime: Annotated[str, typer.Option(help="auto | torch | onnx | onnx-int8")] = "auto",
    max_associations: Annotated[int, typer.Option(help="Most associations at once.")] = 8,
    max_pdu: Annotated[int, typer.Option(help="Largest PDU received, bytes (0: unlimited).")] = 16382,
    timeout: Annotated[float, typer.Option(help="ACSE/DIMSE timeout in seconds (network: twice this).")] = 30.0,
) -> None:
    """A DICOM node: receives images by C-STORE (C-ECHO too), analyses each one (plane, measurement,
    acquisition checklist) and sends a DICOM SR (TID 1500) to --forward, back to the caller's --peer entry
    and/or by STOW-RS. Ctrl-C stops it."""
    import importlib.util
    from functools import partial

    from fetalscope.biometry.measure import COLOURS
    from fetalscope.errors import UnsupportedError
    from fetalscope.interop import require
    from fetalscope.interop.dicom_node import DicomNode, NodeSettings, result_objects, serve_until_stopped
    from fetalscope.interop.dicom_send import Destination, check_stow_url
    from fetalscope.pipeline.measure import measurement_choice
    from fetalscope.pipeline.session import Session

    settings = NodeSettings(
        ae_title=ae_title, bind=bind, port=port,
        forward=Destination.parse(forward, "--forward") if forward else None,
        peers=tuple(Destination.parse(p, "--peer") for p in peer or []),
        stow_url=check_stow_url(stow) if stow else None,
        allow=tuple(split_list(allow)), measure=measurement_choice(measure, "--measure"), overlay=overlay,
        max_associations=max_associations, max_pdu=max_pdu,
        acse_timeout_s=timeout, dimse_timeout_s=timeout, network_timeout_s=2 * timeout,
    )
    if importlib.util.find_spec("pynetdicom") is None:
        raise UnsupportedError("the DICOM node needs pynetdicom: pip install 'fetalscope[dicom-node]'")
    require("highdicom")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for chatty in ("pynetdicom", "highdicom"):  # one line per instance is ours; theirs only when it matters
        logging.getLogger(chatty).setLevel(logging.WARNING)
    session = Session(model, runtime=runtime, detector="brain-structures" if overlay else None)
    node = DicomNode(session, settings, build=partial(result_objects, colours=COLOURS))  # the colours we draw in
    serve_until_stopped(node, warm=lambda: session.analyser)
