"""Archive-scale batch runs: every file through :meth:`Session.analyse`, one Parquet row per file.

``manifest`` turns files, folders and CSV/Parquet manifests into :class:`~.manifest.Item` s; ``tasks`` is the
registry of what to run (``predict``, ``detect``, ``measure``, ``quality``); ``rows`` reads one item once and
analyses it into one row (an error row for a file that cannot be analysed), with ``clips`` for cine loops (video
files, multi-frame DICOM, multi-page TIFF); ``walk`` searches folders (link loops are error rows, not followed);
``store`` writes rows incrementally as part files and merges them into the output (and reads what a run already
did, and which files earlier runs died on, for ``--resume``); ``local`` and
``ray_engine`` are the two engines (in-process, or Ray Data with an actor pool and a per-file crash budget);
``run`` ties them together (``fetalscope batch``); ``faults`` holds the fault tests' hooks.
Only the CLI and the benchmarks import this package.
"""
