"""Normal vs abnormal fetal brain as a product feature: from a labelled binary set to a trained model,
a measured shortcut report and (optionally) a bundle whose card carries the status and warning.

It sits at the pipeline level because it combines three capabilities (``train`` for transfer
learning, ``evaluate.shortcut`` for the nuisance statistics, ``explain`` for attribution mass), which
must not import one another. ``fetalscope brain-findings DATA --out DIR`` and
``scripts/brain_normal_abnormal.py`` both call :func:`run_brain_study`.
"""

from fetalscope.pipeline.brain_study.data import load_binary_set
from fetalscope.pipeline.brain_study.report import CARD_PRESETS, CardText
from fetalscope.pipeline.brain_study.run import BrainStudyOptions, default_data, run_brain_study

__all__ = ["CARD_PRESETS", "BrainStudyOptions", "CardText", "default_data", "load_binary_set", "run_brain_study"]
