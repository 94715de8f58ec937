"""The words of an analysis's warnings that other parts of a page already show: the findings model's card
warning (shown in its banner) and the brain sub-plane caveat (shown on the sub-plane line). One place, so
the app and the report list every caution once."""

from __future__ import annotations

from typing import Any

FINDINGS_WARNING_PREFIX = "Normal/abnormal finding"
SUBPLANE_WARNING_PREFIX = "Brain sub-plane: "


def listed_warnings(record: dict[str, Any]) -> list[str]:
    """The warnings of an analysis record that a page lists on their own: those not already shown in the
    findings banner (when findings are shown) or on the sub-plane line (when a sub-plane is shown)."""
    out = []
    for w in record.get("warnings") or []:
        if record.get("brain_findings") and w.startswith(FINDINGS_WARNING_PREFIX):
            continue
        if record.get("brain_plane") and w.startswith(SUBPLANE_WARNING_PREFIX):
            continue
        out.append(w)
    return out
