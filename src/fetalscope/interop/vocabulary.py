"""The codes fetalscope's results are written with, in one place: LOINC for the measurements (each checked
against pydicom's code dictionary by the tests), UCUM units, SNOMED CT anatomy and DICOM's own concepts;
the labels of fetalscope's own models (planes, grades) in the private scheme ``99FETALSCOPE``."""

from __future__ import annotations

import re

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

PRIVATE_SCHEME = "99FETALSCOPE"

# every standard code is taken from pydicom's code dictionary by its keyword (the tests pin the values)
HEAD_CIRCUMFERENCE = codes.LN.HeadCircumference  # 11984-2
BIPARIETAL_DIAMETER = codes.LN.BiparietalDiameter  # 11820-8
OCCIPITOFRONTAL_DIAMETER = codes.LN.OccipitalFrontalDiameter  # 11851-3
GESTATIONAL_AGE = codes.LN.GestationalAge  # 18185-9
GA_BY_HC_HADLOCK_1984 = codes.LN.HCHadlock1984  # 11932-1, CID 12013 Gestational Age Equations and Tables
CTR_CIRCUMFERENCE = codes.LN.CardiothoracicCircumferenceRatio  # 59074-5
CTR_AREA = codes.LN.CardiothoracicAreaRatio  # 59076-0

MILLIMETRE = codes.UCUM.Millimeter  # mm
WEEK = codes.UCUM.Week  # wk
RATIO = codes.UCUM.Ratio  # {ratio}
NO_UNITS = codes.UCUM.NoUnits  # 1

HEAD = codes.SCT.Head
HEART = codes.SCT.Heart
THORAX = codes.SCT.Thorax
OBSTETRIC_US_SCAN = codes.SCT.ObstetricUSScan
OBSTETRIC_GYN_US_REPORT = codes.LN.UltrasoundObstetricAndGynReport  # 11525-3 (CID 7000)

IMAGE_VIEW = codes.DCM.ImageView
IMAGE_QUALITY_RATING = codes.DCM.ImageQualityRating
PROBABILITY = codes.DCM.Probability
MEASUREMENT_METHOD = codes.SCT.MeasurementMethod

# head record key -> (concept, unit)
HEAD_ITEMS = (("hc_mm", HEAD_CIRCUMFERENCE, MILLIMETRE), ("bpd_mm", BIPARIETAL_DIAMETER, MILLIMETRE),
              ("ofd_mm", OCCIPITOFRONTAL_DIAMETER, MILLIMETRE))
# ctr key -> concept (the diameter ratio has no LOINC code and stays in the JSON record)
CTR_ITEMS = (("circumference", CTR_CIRCUMFERENCE), ("area", CTR_AREA))
# GA formulas fetalscope names in its records -> their LOINC equation code
GA_FORMULAS = {"Hadlock 1984 (HC)": GA_BY_HC_HADLOCK_1984}
STRUCTURES = {"head": HEAD, "heart": HEART, "thorax": THORAX}


def private_code(label: str) -> Code:
    """A code of fetalscope's own scheme for one of its labels ("Fetal brain" -> ``fetal-brain``)."""
    value = re.sub(r"[^a-z0-9]+", "-", label.strip().lower()).strip("-")[:16] or "unknown"
    return Code(value, PRIVATE_SCHEME, label.strip()[:64])
