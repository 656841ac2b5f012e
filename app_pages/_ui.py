"""Streamlit glue shared by the pages: session settings, thin caches around ``core.lab``,
error display and photo cards. Business logic stays in ``core``; this module only wires and draws.

Caching policy (Streamlit's own guidance):
* ``st.cache_resource`` holds shared, read-only handles: the loaded dataset (``LabData``), splits,
  embedding providers (DuckDB connection + encoder models) and fitted content models. Nothing
  returned from them is mutated.
* ``st.cache_data`` only for the small encoder/technique lists, bounded with ``max_entries``.
* Big arrays and results live in DuckDB (runs, projections, embeddings), queried per rerun; the
  small reads every rerun repeats (which runs are stored, their metrics, the held-out truth) are
  kept by the runs store itself while its file is unchanged (``DuckStore.remember``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core import lab as api
from core.config import cache_dir as resolve_cache_dir
from core.data import LoadOptions
from core.errors import LabError
from core.lab import choices as lab_choices
from core.progress import ProgressEvent

#: Per-session settings and their defaults; ``app.py`` sets them once per session.
DEFAULTS: dict[str, Any] = {
    "dataset_spec": "demo",
    "recent_specs": ["demo"],
    "enc_text": api.DEFAULT_ENCODERS["text"],
    "enc_image": api.DEFAULT_ENCODERS["image"],
    # None: not chosen yet; the sidebar takes the role's default, the first of its choices (a real
    # CLIP whose weights are here, else the align: space; it depends on the machine)
    "enc_clip": None,
    "split": "random",
    "seed": 42,
    "tune": True,
    "photo_filter": "none",
    "review_filter": "none",
    "techniques": ["popular", "als", "itemknn", "image"],
    "metrics": ["ndcg", "map", "recall"],
    "k": 10,
    "baseline": "popular",
    "inspect_techniques": [],
    "inspect_mode": "By id",
    "inspect_metric": "ndcg",
    "inspect_n": 10,  # the Inspect page's one cut-off: cards, per-user metrics and user lists
    "inspect_user": None,  # the user the Inspect page shows (for the URL)
    "map_role": "image",
    "map_what": "items-photo",
    "map_colour": "category",
    "map_user": "(none)",
    "search_query": "",
    "search_mode": None,  # None: the Search page's default for the chosen encoders
}
NONE = "(none)"


def init_session() -> None:
    """Set every default once per session and keep page widgets' values across page switches
    (re-assigning a key turns widget state into session state that survives the widget). At a
    session's start, the URL's query parameters (``URL_PARAMS``) override the defaults."""
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = list(value) if isinstance(value, list) else value
        else:
            st.session_state[key] = st.session_state[key]
    if "url_read" not in st.session_state:
        st.session_state["url_read"] = True
        read_url()


# --- shareable views: the URL's query parameters -------------------------------------------------
#: Query parameter -> the session_state key it sets. Read once when a session starts
#: (``read_url``), written back on every rerun (``write_url``), so a copied link opens the same
#: view in another browser session. The page is the ``page`` parameter (``PAGES``).
URL_PARAMS: dict[str, str] = {
    "dataset": "dataset_spec", "split": "split", "seed": "seed", "techniques": "techniques",
    "k": "k", "user": "inspect_user", "n": "inspect_n", "side": "inspect_techniques",
    # the Embedding page's settings, by their own keys (that page checks their values)
    "map_role": "map_role", "map_what": "map_what", "map_colour": "map_colour",
    "map_user": "map_user",
}
#: The ``page`` parameter's values (``compare`` is the default page).
PAGES = ("compare", "inspect", "embedding", "search")
#: Parameters whose value is a comma-separated list.
_LISTS = {"techniques", "side"}


def _technique_names() -> list[str]:
    return [r["name"] for r in technique_choices(())]


def _parse(name: str, raw: str) -> Any:
    """The session value of query parameter ``name`` given as ``raw``; ``ValueError`` saying why
    it is not valid."""
    raw = raw.strip()
    if not raw or len(raw) > 500:
        raise ValueError("empty" if not raw else "too long")
    if name in _LISTS:
        values = list(dict.fromkeys(v.strip() for v in raw.split(",") if v.strip()))
        known = set(_technique_names())
        unknown = [v for v in values if v not in known]
        if unknown or not values:
            raise ValueError(f"unknown technique {', '.join(unknown) or raw!r}")
        return values
    if name in ("k", "n"):
        if not raw.isdigit() or int(raw) not in api.KS:
            raise ValueError(f"not one of {', '.join(map(str, api.KS))}")
        return int(raw)
    if name == "seed":
        if not raw.isdigit():
            raise ValueError("not a whole number ≥ 0")
        return int(raw)
    if name == "split" and raw not in api.split_kinds():
        raise ValueError(f"not one of {', '.join(api.split_kinds())}")
    if name == "dataset":
        from core.data import parse_spec

        try:
            parse_spec(raw)
        except LabError as exc:
            raise ValueError(str(exc)) from None
    return raw


def read_url() -> None:
    """Copy the URL's query parameters into ``st.session_state`` (once, at session start).
    Invalid ones are ignored, each with a note in ``st.session_state["url_notes"]`` (the app
    shows them as toasts); ``page`` is kept in ``url_page`` for ``app.py`` to switch to, ``user``
    also selects that user on Inspect (by id)."""
    s = st.session_state
    notes: list[str] = []
    params = st.query_params.to_dict()
    for name, raw in params.items():
        if name == "page":
            if raw in PAGES:
                s["url_page"] = raw
            else:
                notes.append(f"page={raw}: not one of {', '.join(PAGES)}")
            continue
        if name not in URL_PARAMS:
            notes.append(f"{name}: not a parameter of this app")
            continue
        try:
            value = _parse(name, raw)
        except ValueError as exc:
            notes.append(f"{name}={raw}: {exc}")
            continue
        s[URL_PARAMS[name]] = value
        if name == "user":
            s["inspect_user_id"], s["inspect_mode"] = value, "By id"
            s["url_user"] = value  # the Inspect page says so if it has no such user
    if notes:
        s["url_notes"] = [f"Ignored the link's {n}" for n in notes]


def url_params(page: str) -> dict[str, str]:
    """The query parameters of the current view: ``page`` and each ``URL_PARAMS`` setting that
    differs from its default (so a plain link stays short)."""
    s = st.session_state
    out = {} if page == PAGES[0] else {"page": page}
    for name, key in URL_PARAMS.items():
        value = s.get(key)
        if value is None or value == NONE or value == DEFAULTS.get(key) or value == []:
            continue
        out[name] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return out


def write_url(page: str) -> None:
    """Put the current view in the URL (only when it changed)."""
    want = url_params(page)
    if st.query_params.to_dict() != want:
        st.query_params.from_dict(want)


@contextmanager
def guard() -> Iterator[None]:
    """Show an engine error (``LabError``) as its message in an error box and stop the page;
    anything else is a bug and keeps Streamlit's normal exception display."""
    try:
        yield
    except LabError as exc:
        st.error(str(exc), icon=":material/error:")
        st.stop()


# --- session settings ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """The sidebar's choices for this rerun."""

    spec: str
    cache_root: Path
    split: str
    seed: int
    encoders: dict[str, str | None]
    options: dict[str, Any]


def settings() -> Settings:
    """The current session's settings (set by ``app.py``'s sidebar)."""
    s = st.session_state
    encoders = {role: (None if s[f"enc_{role}"] in (None, NONE) else s[f"enc_{role}"])
                for role in api.ROLES}
    options: dict[str, Any] = {"tune": bool(s["tune"])}
    if s["photo_filter"] != "none":
        options["photo_filter"] = s["photo_filter"]
    if s["review_filter"] != "none":
        options["review_filter"] = s["review_filter"]
    return Settings(spec=s["dataset_spec"], cache_root=cache_root(), split=s["split"],
                    seed=int(s["seed"]), encoders=encoders, options=options)


def cache_root() -> Path:
    """The cache directory (``$MMREC_CACHE_DIR`` or ``./cache``)."""
    return resolve_cache_dir(None)


# --- cached resources ---------------------------------------------------------------------------
@st.cache_resource(max_entries=3, show_spinner=False)
def _load(spec: str, root: str, options: LoadOptions) -> api.LabData:
    return api.load(spec, root, options)


def data(cfg: Settings | None = None) -> api.LabData:
    """The loaded dataset of the session (generated and loaded once per process)."""
    cfg = cfg or settings()
    with st.spinner(f"Loading {cfg.spec} …" if cfg.spec != "demo"
                    else "Loading the synthetic demo (generated on first use) …"):
        return _load(cfg.spec, str(cfg.cache_root), LoadOptions(seed=cfg.seed))


@st.cache_data(max_entries=8, show_spinner=False)
def _describe(_data: api.LabData, key: str) -> tuple[dict, list[str]]:
    return api.describe(_data)


def describe(lab: api.LabData) -> tuple[dict, list[str]]:
    """The sidebar's dataset summary and warnings (``api.describe``), once per loaded dataset
    rather than on every rerun (~50 ms on 2M interactions)."""
    return _describe(lab, lab.key)


@st.cache_resource(max_entries=6, show_spinner=False)
def _split(_data: api.LabData, key: str, kind: str, seed: int):
    return api.split_of(_data, kind, seed)


def split(lab: api.LabData, cfg: Settings):
    """The split of the session's dataset (made once per (dataset, kind, seed))."""
    return _split(lab, lab.key, cfg.split, cfg.seed)


@st.cache_resource(max_entries=2, show_spinner=False)
def _provider(_data: api.LabData, key: str, root: str):
    return api.provider(_data, root)


@st.cache_resource(max_entries=4, show_spinner=False)
def _context(_data: api.LabData, _split: Any, _provider: Any, key: tuple):
    encoders, options, seed = dict(key[3]), dict(key[4]), key[2]
    return api.fit_context(_data, _split, _provider, encoders, options, seed)


def context(lab: api.LabData, cfg: Settings):
    """A ``FitContext`` on the train part with the shared embedding provider, built once per
    (dataset, split, seed, encoders, options): what it memoises (representations, maps) then
    lasts across reruns and sessions instead of being rebuilt on every rerun."""
    key = (lab.key, cfg.split, cfg.seed, tuple(sorted(cfg.encoders.items(), key=str)),
           tuple(sorted(cfg.options.items(), key=str)), str(cfg.cache_root))
    return _context(lab, split(lab, cfg), _provider(lab, lab.key, str(cfg.cache_root)), key)


@st.cache_resource(max_entries=6, show_spinner=False)
def _content_model(_ctx: Any, key: tuple, technique: str):
    return api.content_model(_ctx, technique)


def content_model(lab: api.LabData, cfg: Settings, technique: str):
    """A fitted content technique (for "because you liked …"), or ``None`` for other kinds."""
    if not api.is_content(technique):
        return None
    key = (lab.key, cfg.split, cfg.seed,
           tuple(sorted((k, str(v)) for k, v in cfg.encoders.items())),
           tuple(sorted((k, str(v)) for k, v in cfg.options.items())))
    return _content_model(context(lab, cfg), key, technique)


@st.cache_data(max_entries=1, show_spinner="Checking which encoder weights are here …")
def encoder_choices() -> dict[str, list[dict[str, Any]]]:
    """Encoder specs per role with availability (probed once per process: it imports open_clip;
    the sidebar's "Re-check" button clears it)."""
    return api.encoder_choices(check=True)


@st.cache_data(max_entries=16, show_spinner=False)
def technique_choices(encoders: tuple[tuple[str, str | None], ...]) -> list[dict[str, Any]]:
    """Techniques with availability for the chosen encoders."""
    return api.technique_choices(dict(encoders))


def techniques_for(cfg: Settings) -> list[dict[str, Any]]:
    return technique_choices(tuple(sorted(cfg.encoders.items())))


def comparison(lab: api.LabData, cfg: Settings, techniques: list[str]) -> api.Comparison:
    """Stored results of ``techniques`` (nothing computed; missing ones are simply absent)."""
    return api.run_comparison(lab, cfg.cache_root, cfg.split, cfg.seed, techniques, cfg.encoders,
                              cfg.options, compute=False)


@st.cache_data(max_entries=256, show_spinner=False)
def _pair_cis(_cmp: api.Comparison, runs: tuple, baseline: str, technique: str, metric: str,
              seed: int) -> pd.DataFrame:
    return api.paired_cis(_cmp, baseline, metric, seed=seed, techniques=[technique])


def paired_ci(cmp: api.Comparison, baseline: str, metric: str, k: int, seed: int) -> pd.DataFrame:
    """Bootstrap CIs vs ``baseline`` at ``k`` (a small table). Each (baseline, technique) pair is
    computed at every k from one set of draws and cached by the two stored runs, so changing k,
    or the other techniques shown, costs nothing (the draws are the cost: ~2 s on 90,000 users)."""
    keys = cmp.keys
    parts = [_pair_cis(cmp, (keys[baseline], keys[t], cmp.split_key), baseline, t, metric,
                       int(seed))
             for t in cmp.available if t != baseline and baseline in keys]
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=["technique", "diff", "low", "high", "n_users",
                                     "significant"])
    every_k = pd.concat(parts, ignore_index=True)
    return every_k[every_k["k"] == int(k)].drop(columns="k").reset_index(drop=True)


class EventView:
    """Draws the engine's ``ProgressEvent``s where it is created (e.g. inside an ``st.status``):
    one bar for the counted job at hand, whatever its phase (``embed``, ``train``, ``tune``,
    ``evaluate``: ``ProgressEvent.line`` names the job and its count), warnings as warning boxes,
    other messages as lines."""

    def __init__(self) -> None:
        self.job = st.empty()

    def __call__(self, event: ProgressEvent) -> None:
        if event.counted:
            self.job.progress(event.fraction or 0.0, text=event.line())
            return
        if event.warning:
            st.warning(event.message, icon=":material/warning:")
        elif event.message:
            st.write(event.line())


@contextmanager
def progress_box(label: str, done: Callable[[], str]) -> Iterator[api.Progress]:
    """A progress callback for one engine call that opens an ``st.status`` box (titled
    ``label``, drawn by ``EventView``) only when the engine reports something, e.g. an
    ``align:`` space training its heads on first use; afterwards the box reads ``done()``."""
    holder = st.container()
    state: dict[str, Any] = {}

    def progress(event: ProgressEvent) -> None:
        if "view" not in state:
            state["box"] = holder.status(label, expanded=True)
            with state["box"]:
                state["view"] = EventView()
        with state["box"]:
            state["view"](event)

    try:
        yield progress
    except BaseException:
        if "box" in state:
            state["box"].update(state="error", expanded=True)
        raise
    if "box" in state:
        state["box"].update(label=done(), state="complete", expanded=False)


def use_aligned() -> None:
    """Button callback (runs before the rerun, so it may set the sidebar's picker): the CLIP role
    becomes the ``align:`` space, and pages take their defaults for it again."""
    st.session_state["enc_clip"] = lab_choices.DEFAULT_ALIGN
    st.session_state["search_mode"] = None


def align_label(lab: api.LabData | None, spec: str) -> str:
    """How an ``align:`` choice reads in the picker: with its held-out recall on the loaded
    dataset when its heads are stored (``core.lab.choices.align_label``)."""
    if lab is not None:
        try:
            return lab_choices.align_label(lab, cache_root(), spec)
        except LabError:  # the choice stays offered; its error shows when it is used
            pass
    return f"{spec} — {lab_choices.ALIGN_NOTE}"


def run_with_status(lab: api.LabData, cfg: Settings, techniques: list[str],
                    missing: list[str], eta: str | None = None) -> api.Comparison:
    """Compute the ``missing`` runs of ``techniques`` (the page already knows which, from
    ``stored_techniques``) inside an ``st.status`` box, drawn from the
    engine's ``ProgressEvent``s: the overall bar counts rows that ended (``done`` / ``skipped``),
    a second bar (``EventView``) follows the counted job at hand (encoding, training an
    ``align:`` space's heads, tuning, scoring users), other events are lines.

    Warnings (events with ``warning``, e.g. the protocol audit finding held-out pairs also in
    train) are shown in the box and kept in ``st.session_state["run_warnings"]`` for the page to
    show after its rerun. ``eta`` (``RunEstimate.short()``) goes in the box's title."""
    with st.status(f"Running {', '.join(missing)}" + (f" ({eta})" if eta else "") + " …",
                   expanded=True) as status:
        bar = st.progress(0.0)
        view = EventView()
        ended: set[str] = set()
        warned: list[str] = st.session_state.setdefault("run_warnings", [])
        warned.clear()

        def progress(event: ProgressEvent) -> None:
            view(event)
            if event.warning:
                warned.append(event.message)
            if event.phase in ("done", "skipped") and event.technique in missing:
                ended.add(event.technique)
                view.job.empty()
                bar.progress(len(ended) / max(1, len(missing)))

        result = api.run_comparison(lab, cfg.cache_root, cfg.split, cfg.seed, techniques,
                                    cfg.encoders, cfg.options, progress=progress)
        bar.progress(1.0)
        view.job.empty()
        status.update(label=f"Computed {', '.join(result.computed) or 'nothing'}; stored in "
                            "runs.duckdb" + (" (see the warning)" if warned else ""),
                      state="complete", expanded=bool(warned))
    return result


# --- drawing ------------------------------------------------------------------------------------
def photo(path: Any, caption: str | None = None, width: int | str = "stretch") -> None:
    """A photo from disk, or a grey placeholder when the item has none."""
    if isinstance(path, str) and path and Path(path).is_file():
        st.image(path, caption=caption, width=width)
    else:
        st.markdown(
            "<div style='height:90px;background:#eee;border-radius:6px;display:flex;"
            "align-items:center;justify-content:center;color:#888;font-size:0.8em'>"
            "no photo</div>", unsafe_allow_html=True)
        if caption:
            st.caption(caption)


def item_card(row: Any, *, score: bool = True, hit: bool | None = None,
              extra: str | None = None, compact: bool = False) -> None:
    """One item as a bordered card: photo, rank and name, category and city, score, a hit
    badge; the raw item id (and raw score) in the title's tooltip. The score shown is
    ``score_scaled`` when the row has it (Inspect: comparable across techniques), else
    ``score``. ``compact`` puts a small photo beside the text (for lists side by side)."""
    title = f"**{row.name}**"
    if getattr(row, "rank", None) is not None and pd.notna(row.rank):
        title = f"#{int(row.rank)} · {title}"
    if hit:
        title = f":green-background[✓ hit] {title}"
    bits = [str(row.category)]
    if getattr(row, "city", ""):
        bits.append(str(row.city))
    tip = f"item id `{row.item_id}`" if hasattr(row, "item_id") else None
    if score and hasattr(row, "score_scaled") and pd.notna(row.score_scaled):
        bits.append(f"score {row.score_scaled:.2f}")
        tip = f"{tip}; raw score {row.score:.4g}" if tip else f"raw score {row.score:.4g}"
    elif score and hasattr(row, "score") and pd.notna(row.score):
        bits.append(f"score {row.score:.3f}")
    with st.container(border=True):
        if compact:
            left, right = st.columns([1, 2], vertical_alignment="center")
            with left:
                photo(row.photo)
            target = right
        else:
            photo(row.photo)
            target = st.container()
        with target:
            st.markdown(title, help=tip)
            st.caption(" · ".join(bits))
            if extra:
                st.caption(extra)


def grid(rows: pd.DataFrame, columns: int = 5, **card: Any) -> None:
    """Item cards in a grid of ``columns``."""
    records = list(rows.itertuples())
    for start in range(0, len(records), columns):
        cols = st.columns(columns)
        for col, row in zip(cols, records[start:start + columns]):
            with col:
                item_card(row, **card)


def swatch(technique: str, colour: str) -> str:
    """``technique`` in bold after a square of its colour (``core.lab.technique_colours``), for
    ``st.markdown(..., unsafe_allow_html=True)``."""
    return f"<span style='color:{colour}' title='{colour}'>■</span> **{technique}**"


def spec_label(spec: str) -> str:
    """How a dataset spec reads in pickers."""
    return "demo — synthetic Yelp-layout demo" if spec == "demo" else spec
