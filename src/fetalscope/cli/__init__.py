"""`fetalscope` command line: one verb per task (Typer)."""

from fetalscope.cli.app import app

__all__ = ["app"]
