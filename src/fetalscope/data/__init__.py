"""Datasets (FETAL_PLANES_DB, class folders, YOLO, HC18, FOCUS), splits, transforms and phantoms."""
