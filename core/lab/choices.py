"""What the sidebar and pickers offer: encoder specs per role (offline defaults first), techniques
with their availability given the chosen encoders, and the split kinds."""

from __future__ import annotations

from typing import Any

#: Offline defaults per encoder role.
DEFAULT_ENCODERS: dict[str, str] = {
    "text": "text:minilm", "image": "cnn:efficientnet-lite0", "clip": "clip:ViT-B-32/untrained",
}
ROLES: tuple[str, ...] = ("text", "image", "clip")
ROLE_LABELS = {"text": "Text encoder", "image": "Image encoder", "clip": "CLIP encoder"}


def encoder_role(spec: str) -> str:
    """Role of an encoder spec: ``clip``, ``image`` (cnn) or ``text`` (text, bert)."""
    kind = spec.split(":", 1)[0]
    return {"clip": "clip", "align": "clip", "cnn": "image"}.get(kind, "text")


def encoder_choices(check: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Encoder specs per role (``text``, ``image``, ``clip``), each ``{spec, available, reason,
    label, description}``; the offline defaults first. Unavailable ones keep their reason."""
    from core.encoders import list_encoders

    out: dict[str, list[dict[str, Any]]] = {r: [] for r in ROLES}
    for row in list_encoders(check=check):
        row = dict(row)
        role = encoder_role(row["spec"])
        label = row["spec"]
        if "untrained" in row["spec"]:
            label += " (untrained: random weights)"
        if not row.get("available", True):
            label += " — unavailable"
        row["label"] = label
        out[role].append(row)
    for role, rows in out.items():
        rows.sort(key=lambda r: (r["spec"] != DEFAULT_ENCODERS[role], not r.get("available", True)))
    return out


def technique_choices(encoders: dict[str, str | None]) -> list[dict[str, Any]]:
    """Registered techniques, each with ``available`` and ``reason`` given the chosen encoders."""
    from core.recommenders import list_techniques

    rows = []
    for row in list_techniques():
        missing = [r for r in row["needs"] if not encoders.get(r)]
        row["available"] = not missing
        row["reason"] = (f"needs a {', '.join(missing)} encoder (pick one in the sidebar)"
                         if missing else "")
        rows.append(row)
    return rows


def split_kinds() -> list[str]:
    """The split kinds the engine offers."""
    from core.evaluation.splits import SPLIT_KINDS

    return list(SPLIT_KINDS)
