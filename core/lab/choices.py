"""What the sidebar and pickers offer: encoder specs per role (defaults first), techniques
with their availability given the chosen encoders, the split kinds, and the one colour each
technique has on every chart and page (``technique_colours``).

The CLIP role's default is a real CLIP whose weights are on this machine
(``core.encoders.clip_weights_here``), else ``DEFAULT_ALIGN``: the packaged text and image
encoders joined by heads trained on the dataset's own pairs (``core.encoders.align``), a shared
space that works offline. ``clip:ViT-B-32/untrained`` stays offered, labelled as random weights.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.encoders.align.config import DEFAULT_ALIGN, is_align_spec

#: Offline defaults per encoder role (the app's CLIP default prefers real weights when they are
#: here: ``default_encoders``).
DEFAULT_ENCODERS: dict[str, str] = {
    "text": "text:minilm", "image": "cnn:efficientnet-lite0", "clip": DEFAULT_ALIGN,
}
ROLES: tuple[str, ...] = ("text", "image", "clip")
ROLE_LABELS = {"text": "Text encoder", "image": "Image encoder", "clip": "CLIP encoder"}
#: How an ``align:`` choice reads before it is known whether its heads are stored.
ALIGN_NOTE = "aligned on this dataset (trained on first use, a few seconds)"
UNTRAINED_NOTE = "untrained: random weights"


def _real_clip(spec: str) -> bool:
    """A ``clip:`` spec with weights of its own (not random, not the ``file=`` placeholder)."""
    return spec.startswith("clip:") and "untrained" not in spec and "<" not in spec


def encoder_role(spec: str) -> str:
    """Role of an encoder spec: ``clip``, ``image`` (cnn, features:image) or ``text`` (text,
    bert, features:text)."""
    kind = spec.split(":", 1)[0]
    if kind == "features":
        return "image" if spec.endswith(":image") else "text"
    return {"clip": "clip", "align": "clip", "cnn": "image"}.get(kind, "text")


def encoder_choices(check: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Encoder specs per role (``text``, ``image``, ``clip``), each ``{spec, available, reason,
    label, description}``; each role's default first (``default_encoders``), then the other
    available ones, untrained ones, unavailable ones (which keep their reason).

    ``align:`` rows read "aligned on this dataset" (``align_label`` adds the held-out recall once
    a dataset is loaded); untrained ones say they are random weights. With ``check``, a real CLIP
    counts as available exactly when ``core.encoders.clip_weights_here`` finds its weights."""
    from core import encoders

    out: dict[str, list[dict[str, Any]]] = {r: [] for r in ROLES}
    for row in encoders.list_encoders(check=check):
        row = dict(row)
        spec = row["spec"]
        if check and _real_clip(spec):  # one rule for "here": the pickers and the default agree
            here = encoders.clip_weights_here(spec)
            if here != bool(row.get("available")):
                row["available"] = here
                row["reason"] = "weights here" if here else "weights not on this machine"
        label = spec
        if is_align_spec(spec):
            label += f" — {ALIGN_NOTE}"
        elif "untrained" in spec:
            label += f" ({UNTRAINED_NOTE})"
        if row.get("available") is False:
            label += " — unavailable"
        row["label"] = label
        out[encoder_role(spec)].append(row)
    defaults = _defaults(out) if check else DEFAULT_ENCODERS
    for role, rows in out.items():
        rows.sort(key=lambda r: (r["spec"] != defaults[role], not r.get("available", True),
                                 "untrained" in r["spec"]))
    return out


def features_here(spec: str, data: Any | None) -> bool:
    """Whether the ``features:<modality>`` spec can be used on the loaded dataset ``data`` (a
    ``LabData``, or ``None`` before one loads): the dataset carries item features of that
    modality (an ``mmrec:`` dataset's ``image_feat.npy`` / ``text_feat.npy``)."""
    modality = spec.partition(":")[2].strip()
    return data is not None and modality in getattr(data.ds, "item_features", {})


def _defaults(choices: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """The first real CLIP that is available (``encoder_choices(check=True)`` already counts one
    available exactly when its weights are here), else ``DEFAULT_ALIGN``."""
    clip = next((r["spec"] for r in choices.get("clip", [])
                 if _real_clip(r["spec"]) and r.get("available")), DEFAULT_ALIGN)
    return dict(DEFAULT_ENCODERS, clip=clip)


def default_encoders(choices: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, str]:
    """The default spec per role: the offline text and image encoders, and for ``clip`` the first
    real CLIP whose weights are here (``core.encoders.clip_weights_here``; never the network),
    else ``DEFAULT_ALIGN``. ``choices``: an ``encoder_choices(check=True)`` result to reuse."""
    return _defaults(choices if choices is not None else encoder_choices(check=True))


def align_label(data: Any, cache_root: str | Path, spec: str = DEFAULT_ALIGN) -> str:
    """How the ``align:`` choice ``spec`` reads on the loaded dataset ``data`` (a ``LabData``):
    ``"<spec> — aligned on this dataset (t→i R@10 0.72, chance 0.13)"`` when its heads are stored
    (held-out text → photo recall), else ``"<spec> — aligned on this dataset (trained on first
    use, a few seconds)"``; ``"<spec> — no photo–text pairs to align on in this dataset"`` when
    it has none. Nothing is trained or encoded."""
    from core.encoders import create_encoder
    from core.errors import EncoderUnavailable

    enc = create_encoder(spec, dataset=data.ds, cache_root=cache_root)
    try:
        heads = enc.stored_heads()
    except EncoderUnavailable:  # no pairs: its error says more where the space is used
        return f"{spec} — no photo–text pairs to align on in this dataset"
    fig = ((heads.info if heads is not None else {}).get("heldout") or {}).get("text_to_image")
    if not fig or "recall@10" not in fig:
        return f"{spec} — {ALIGN_NOTE}"
    return (f"{spec} — aligned on this dataset (t→i R@10 {fig['recall@10']:.2f}, "
            f"chance {fig['chance@10']:.2f})")


def trained_shared_space(spec: str | None) -> bool:
    """Whether ``spec`` is a shared image–text space that knows meaning: an ``align:`` space of
    trained towers (its heads are trained on first use), or a real CLIP whose weights are here.
    Untrained (random-weight) CLIP and single-modality encoders are not."""
    from core import encoders

    if not spec or "untrained" in spec:
        return False
    if is_align_spec(spec):
        return True
    return spec.startswith("clip:") and encoders.clip_weights_here(spec)


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


#: Twenty colours far apart on a white background (each pair at least 36 apart in CIELAB,
#: ΔE*ab; picked greedily from plotly's Dark24 and Alphabet, Kelly's colours, D3, Set1, Dark2,
#: Bold and Vivid): colour ``i`` goes to the ``i``-th registered technique (``list_techniques``
#: order: random and popular are the near-neutral ones), the last ones to other labels.
PALETTE: tuple[str, ...] = (
    "#778AAE", "#222A2A", "#3283FE", "#17BECF", "#F38400", "#1CA71C", "#BE0032", "#782AB6",
    "#FE00FA", "#6C4516", "#BCBD22", "#E377C2", "#511CFB", "#0D2A63", "#1C8356", "#620042",
    "#FA0087", "#FB0D0D", "#C2B280", "#F99379",
)


def technique_colours(labels: Iterable[str]) -> dict[str, str]:
    """One colour per technique label (``PALETTE`` hex strings), the same on every page and
    chart: a registered technique's name always gets its own colour; any other label (a CLI row
    such as ``vbpr:ablate=text``) gets one picked from its name's hash among the colours the
    given labels leave free, so up to ``len(PALETTE)`` labels are always told apart (beyond
    that, colours repeat)."""
    from core.recommenders import list_techniques

    labels = list(dict.fromkeys(str(label) for label in labels))
    fixed = {row["name"]: PALETTE[i % len(PALETTE)]
             for i, row in enumerate(list_techniques())}
    out = {label: fixed[label] for label in labels if label in fixed}
    used, registered = set(out.values()), set(fixed.values())
    for label in labels:
        if label in out:
            continue
        start = int(hashlib.sha1(label.encode()).hexdigest(), 16) % len(PALETTE)
        order = PALETTE[start:] + PALETTE[:start]
        free = [c for c in order if c not in used and c not in registered] or \
            [c for c in order if c not in used] or list(order)
        out[label] = free[0]
        used.add(free[0])
    return out
