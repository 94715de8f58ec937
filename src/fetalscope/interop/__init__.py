"""Results into the hospital's systems: DICOM objects that join the source study (Structured Report
TID 1500, colour presentation state, Segmentation) and FHIR resources for the health record.

Every writer here takes the JSON record of a result (``Analysis.to_dict()`` or a measurement record,
or anything with ``to_dict()``) and the source DICOM; none runs a model. The package imports only the
base modules of fetalscope (``errors``, ``config``) and the DICOM/FHIR libraries of the extra
``fetalscope[dicom-out]`` (highdicom, pydicom, fhir.resources).
"""

from __future__ import annotations

import importlib.util

from fetalscope.errors import UnsupportedError

NEEDS = {"highdicom": "highdicom", "fhir.resources": "fhir.resources"}


def require(*modules: str) -> None:
    """Raise ``UnsupportedError`` naming the extra to install when a library of ``fetalscope[dicom-out]`` is
    missing (``require("highdicom")`` before writing DICOM objects, ``require("fhir.resources")`` for FHIR)."""
    missing = [m for m in modules or tuple(NEEDS) if importlib.util.find_spec(m.split(".")[0]) is None
               or importlib.util.find_spec(m) is None]
    if missing:
        raise UnsupportedError(f"DICOM and FHIR outputs need {', '.join(missing)}: "
                               "pip install 'fetalscope[dicom-out]'")
