"""The SonoNet bundle recipe: ``sononet-planes`` and ``sononet-brain-planes`` built from SonoNet16.npz and the
real labelled images of the shared folder, every card and report number computed from them.

- :mod:`.build`: :func:`~.build.build_sononet_bundles` (``scripts/build_sononet_bundle.py``);
- :mod:`.int8`: :func:`~.int8.quantize_sononet_planes`, the int8 twin and its fidelity
  (``scripts/quantize_bundle.py``);
- :mod:`.outputs` (SonoNet's outputs on the images, cached; the plane mapping), :mod:`.studies` (sector
  crop, per-source and head-size accuracy, the brain sub-plane probe and its source-shortcut check),
  :mod:`.markdown` (the report sections), :mod:`.common` (the calibration/test split, licences, citations).
"""
