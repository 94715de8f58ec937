"""Normal vs abnormal fetal brain as a product feature: from a labelled binary set to a trained model,
a measured shortcut report and (optionally) a bundle whose card carries the status and warning.

A training recipe: it uses the classifier trainer (:mod:`fetalscope.train.classifier`), the shared
statistics (``evaluate.shortcut`` for the nuisance checks) and a capability (``explain`` for attribution
mass), which ``train`` may all import. The one-image inference of the trained bundle lives in
:mod:`fetalscope.pipeline.brain_findings`. ``fetalscope brain-findings DATA --out DIR`` and
``scripts/brain_normal_abnormal.py`` both call :func:`run_brain_study`.
"""

from fetalscope.train.recipes.brain_findings.data import load_binary_set
from fetalscope.train.recipes.brain_findings.run import BrainStudyOptions, default_data, run_brain_study
from fetalscope.train.recipes.brain_findings.study_report import CARD_PRESETS, CardText

__all__ = ["CARD_PRESETS", "BrainStudyOptions", "CardText", "default_data", "load_binary_set", "run_brain_study"]
