"""Archive-scale batch runs: every file through :meth:`Session.analyse`, one Parquet row per file.

``manifest`` turns files, folders and CSV/Parquet manifests into :class:`~.manifest.Item` s; ``tasks`` is the
registry of what to run (``predict``, ``detect``, ``measure``); ``rows`` analyses one item into one row (an
error row for a file that cannot be analysed); ``store`` writes rows incrementally as part files and merges
them into the output (and reads what a run already did, for ``--resume``); ``local`` and ``ray_engine`` are the
two engines (in-process, or Ray Data with an actor pool); ``run`` ties them together (``fetalscope batch``).
Only the CLI and the benchmarks import this package.
"""
