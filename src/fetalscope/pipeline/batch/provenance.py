"""Which software and models made an archive's rows: fetalscope's version, the runtime, the tasks and every model
bundle the run's session uses (name, version and, where the card counts retrained revisions, the revision).

The store writes it into each Parquet file's schema metadata (key ``fetalscope``, JSON; read it with
``pyarrow.parquet.read_schema(PATH).metadata[b"fetalscope"]``), and ``--resume`` refuses to add rows made by
other models, another runtime or other tasks to an archive that says how its rows were made: such an archive would
mix numbers from two models without a trace, and the files already done would never get the new tasks' columns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fetalscope import __version__
from fetalscope.config import DEFAULT_MODELS
from fetalscope.errors import BadInputError
from fetalscope.models.cards import model_label, read_card

METADATA_KEY = b"fetalscope"


def detector_for(tasks: Any) -> str | None:
    """The detector bundle a run with these task names loads (``None``: no detection)."""
    return DEFAULT_MODELS["detector"] if "detect" in tasks else None


def card_label(card: dict[str, Any], name_or_path: str | Path) -> str:
    """:func:`~fetalscope.models.cards.model_label` of a bundle's ``card`` (its folder's name when the card has
    none)."""
    return model_label({"id": card.get("name") or Path(str(name_or_path)).name, "version": card.get("version", ""),
                        "revision": card.get("revision")})


def run_bundles(model: str, tasks: Any) -> dict[str, str]:
    """``{role: bundle name or folder}`` of every bundle a run's session uses: the plane model, the brain sub-plane
    and findings models, the detector with ``detect``, and both measurement bundles with ``measure`` or
    ``quality``."""
    roles = {"plane": model, **{r: DEFAULT_MODELS[r] for r in ("brain_plane", "brain_findings")}}
    if detector := detector_for(tasks):
        roles["detector"] = detector
    if "measure" in tasks or "quality" in tasks:
        roles.update({r: DEFAULT_MODELS[r] for r in ("head", "cardiothoracic")})
    return roles


def run_provenance(model: str, runtime: str, tasks: Any) -> dict[str, Any]:
    """What an archive records about the run that wrote it (:data:`METADATA_KEY`): also when each bundle was
    written (its card's ``created``), so that a bundle retrained under the same name and version is told apart."""
    cards = {role: (name, read_card(name)) for role, name in run_bundles(model, tasks).items()}
    return {"fetalscope": __version__, "runtime": runtime, "tasks": list(tasks),
            "models": {role: card_label(card, name) for role, (name, card) in cards.items()},
            "created": {role: str(card.get("created", "")) for role, (_, card) in cards.items()}}


def read_provenance(path: Path) -> dict[str, Any] | None:
    """The provenance a Parquet file records, or ``None`` (written before fetalscope recorded it, or unreadable)."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else None
    except (OSError, ValueError, KeyError):
        return None


def differences(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between the run that wrote an archive and this one (fetalscope's own version aside: a release
    that changes no model changes no number), one phrase each."""
    out = []
    if before.get("runtime") != now.get("runtime"):
        out.append(f"runtime {before.get('runtime')} -> {now.get('runtime')}")
    if list(before.get("tasks") or []) != list(now.get("tasks") or []):
        out.append(f"tasks {','.join(before.get('tasks') or [])} -> {','.join(now.get('tasks') or [])}")
    old, new = before.get("models") or {}, now.get("models") or {}
    made_then, made_now = before.get("created") or {}, now.get("created") or {}
    for role in dict.fromkeys([*old, *new]):
        if old.get(role) != new.get(role):
            out.append(f"{role} model {old.get(role) or 'none'} -> {new.get(role) or 'none'}")
        elif role in made_then and made_then[role] != made_now.get(role):
            out.append(f"{role} model {new.get(role)} written again (created {made_then[role] or 'unknown'} -> "
                       f"{made_now.get(role) or 'unknown'})")
    return out


def check_resume(files: list[Path], now: dict[str, Any]) -> None:
    """Refuse (``BadInputError``) to resume into ``files`` (an output and its parts) when one of them records a
    run that differs from ``now``; files that record nothing are accepted."""
    for path in files:
        before = read_provenance(path)
        changed = differences(before, now) if before else []
        if changed:
            raise BadInputError(f"{path} was written by another run setup ({'; '.join(changed)}): --resume would mix "
                                "rows of both in one archive; use --overwrite to analyse every file again with this "
                                "setup, or another --output")
