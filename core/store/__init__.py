"""Storage: the DuckDB embedding cache (``EmbeddingStore``), the ``EmbeddingProvider`` techniques
use, and the functions behind ``python -m core embed`` / ``cache stats`` / ``cache clear``.

Every DuckDB store (this cache, the runs in ``core.store.runs``, the map coordinates in
``core.projection.store``) is a ``core.store.base.DuckStore``: it declares its schema and version;
the base creates the file atomically, opens it briefly with a lock retry, checks the version and
serialises the threads of a process.

No torch here: encoders are imported only when something has to be encoded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from core.store.cache import DB_NAME, SCHEMA_VERSION, ComputeEngine, EmbeddingStore, Lookup
from core.store.provider import EmbeddingProvider

__all__ = [
    "DB_NAME", "SCHEMA_VERSION", "EmbedReport", "EmbeddingProvider", "EmbeddingStore", "Lookup",
    "cache_clear", "cache_stats", "embed_dataset",
]


#: Per part of ``embed_dataset``: (what a row is, what a distinct input is).
_UNITS = {"photos": ("photos", "files"), "reviews": ("reviews", "texts"),
          "item texts": ("items", "texts")}


@dataclass
class EmbedReport:
    """What ``embed_dataset`` did: per part (photos, reviews, item texts) the counts and time.

    Each part's dict: ``part``, ``total`` (rows: photos, reviews, items), ``empty`` (rows without
    text, skipped; text parts), and in *distinct inputs* (identical texts or files are encoded once,
    which is what the progress bar counts): ``distinct``, ``cached``, ``computed``, ``bad``
    (unreadable, skipped; photos); ``seconds``.
    """

    dataset: str
    spec: str
    encoder_id: str
    untrained: bool
    parts: list[dict] = field(default_factory=list)
    bad_examples: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: the encoder's ``precision_report`` (empty for encoders without one, e.g. test fakes)
    precision: dict = field(default_factory=dict)
    #: what the engine says it did (``RayEngine.summary()``: cluster, actors, shards); empty
    #: in process
    engine: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Human-readable summary lines for the CLI."""
        from core.encoders.precision import describe_report

        label = " (UNTRAINED random weights)" if self.untrained else ""
        out = [f"{self.dataset}: {self.spec} → cache id {self.encoder_id}{label}"]
        if self.precision:
            out.append(f"  {describe_report(self.precision)}")
        for p in self.parts:
            rows, unit = _UNITS.get(p["part"].split(" (")[0], ("rows", "inputs"))
            head = f"  {p['part']:<10} "
            if p["part"] == "heads":
                how = "trained" if p["computed"] else "found in the cache"
                out.append(head + f"{how} in {p['seconds']:.2f} s; held-out {p['summary']}")
                continue
            if p["part"] == "reviews" and p["total"] and p.get("empty") == p["total"]:
                out.append(head + f"no review text in this dataset ({p['total']} reviews, "
                                  "none with text; text techniques use the item texts)")
                continue
            if not p["total"]:
                out.append(head + f"no {rows} in this dataset")
                continue
            skipped = f" ({p['empty']} without text, skipped)" if p.get("empty") else ""
            bad = f", {p['bad']} bad (skipped)" if p.get("bad") else ""
            rate = p["computed"] / p["seconds"] if p["seconds"] > 0 and p["computed"] else 0.0
            speed = f", {rate:.1f} {unit}/s" if rate else ""
            out.append(head + f"{p['total']} {rows}{skipped} → {p['distinct']} distinct {unit}: "
                       f"{p['cached']} cached, {p['computed']} encoded{bad} in "
                       f"{p['seconds']:.2f} s{speed}")
        for reason in self.bad_examples[:5]:
            out.append(f"  bad input: {reason}")
        out.extend(f"  {line}" for line in self.engine)
        out.append(f"  done in {self.seconds:.2f} s (identical inputs are encoded once)")
        return out


def embed_dataset(ds, encoder_spec: str, cache_root: Path, modality: str = "all",
                  progress=True, batch_size: int | None = None,
                  engine: str | ComputeEngine | None = None) -> EmbedReport:
    """Embed a dataset's photos (``image``) and/or review + item texts (``text``) into the cache.

    ``modality="all"`` does whatever the encoder supports; asking for a modality the encoder does
    not have raises ``EncoderUnavailable``. Re-running is a cache hit; an interrupted run resumes.

    ``engine``: where the inputs the cache lacks are encoded: None or ``"local"`` in this
    process; ``"ray"`` on a Ray cluster (a ``core.store.ray_engine.RayEngine`` with its defaults,
    started and stopped here); or an engine object (e.g. ``RayEngine(address=...)``, which its
    caller closes). Which inputs are missing, and how their rows are stored, is the same for all.
    """
    from core.encoders import create_encoder
    from core.errors import EncoderUnavailable

    if engine == "ray":
        from core.store.ray_engine import RayEngine

        with RayEngine() as ray_engine:
            return embed_dataset(ds, encoder_spec, cache_root, modality, progress, batch_size,
                                 ray_engine)
    if isinstance(engine, str):
        if engine != "local":
            raise ValueError(f"engine must be local or ray, not {engine!r}")
        engine = None
    t0 = time.perf_counter()
    enc = create_encoder(encoder_spec, dataset=ds, cache_root=cache_root)
    if getattr(enc, "kind", "") == "align":
        return _embed_aligned(ds, enc, cache_root, modality, progress, batch_size, t0, engine)
    if modality not in ("all", "image", "text"):
        raise ValueError(f"modality must be all, image or text, not {modality!r}")
    wanted = set(enc.modalities) if modality == "all" else {modality}
    if not wanted <= set(enc.modalities):
        raise EncoderUnavailable(
            f"{encoder_spec} encodes {', '.join(sorted(enc.modalities))} only, not {modality}; "
            "pick another --modality or encoder"
        )
    prov = EmbeddingProvider(ds, cache_root, progress=progress, batch_size=batch_size,
                             engine=engine)
    report = EmbedReport(ds.name, encoder_spec, enc.id, bool(getattr(enc, "untrained", False)),
                         precision=dict(getattr(enc, "precision_report", {}) or {}))
    jobs = []
    if "image" in wanted:
        jobs.append(("photos", prov.photos, len(ds.photos)))
    if "text" in wanted:
        jobs.append(("reviews", prov.reviews, len(ds.interactions)))
        jobs.append(("item texts", prov.item_texts, ds.n_items))
    for part, fn, total in jobs:
        before = dict(prov._counts(encoder_spec))
        t = time.perf_counter()
        fn(encoder_spec)
        c = prov._counts(encoder_spec)
        row = {"part": part, "total": total, "seconds": time.perf_counter() - t,
               "cached": c["cached"] - before["cached"],
               "computed": c["computed"] - before["computed"], "bad": 0}
        if part == "photos":
            row["bad"] = c["bad_images"] - before["bad_images"]
        elif part == "reviews":
            row["empty"] = c["empty_texts"] - before["empty_texts"]
        else:
            row["empty"] = c["empty_item_texts"] - before["empty_item_texts"]
        row["distinct"] = row["cached"] + row["computed"] + row["bad"]
        report.parts.append(row)
    report.bad_examples = list(prov._counts(encoder_spec)["bad_examples"])
    report.engine = _engine_summary(engine)
    report.seconds = time.perf_counter() - t0
    return report


def _engine_summary(engine) -> list[str]:
    summary = getattr(engine, "summary", None)
    return list(summary()) if summary else []


def _embed_aligned(ds, enc, cache_root: Path, modality: str, progress, batch_size, t0: float,
                   engine=None) -> EmbedReport:
    """``embed_dataset`` of an ``align:`` encoder: its towers' vectors go into the cache (text
    tower: texts, image tower: photos), then its heads are trained (or found) — its own vectors
    are the heads applied to those, never stored."""
    report = EmbedReport(ds.name, enc.spec, enc.id, bool(enc.untrained))
    for tower, mod in ((enc.text_spec, "text"), (enc.image_spec, "image")):
        if modality in ("all", mod):
            part = embed_dataset(ds, tower, cache_root, mod, progress, batch_size, engine)
            report.parts.extend(dict(p, part=f"{p['part']} ({tower})") for p in part.parts)
            report.bad_examples.extend(part.bad_examples)
    prov = EmbeddingProvider(ds, cache_root, progress=progress, batch_size=batch_size)
    t = time.perf_counter()
    trained = enc.stored_heads() is None
    enc.heads(prov, prov.progress)
    report.parts.append({"part": "heads", "total": 1, "seconds": time.perf_counter() - t,
                         "cached": 0 if trained else 1, "computed": 1 if trained else 0,
                         "bad": 0, "distinct": 1, "summary": enc.info.get("summary", "")})
    report.engine = _engine_summary(engine)
    report.seconds = time.perf_counter() - t0
    return report


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def cache_stats(cache_root: Path) -> str:
    """A table of rows per encoder and modality (with the precision the vectors were computed in;
    ``-`` where the id records none), plus the file's size on disk."""
    store = EmbeddingStore(cache_root)
    if not store.path.exists():
        return f"no embedding cache yet at {store.path}"
    rows = store.stats()
    counts = store.counts()
    lines = [f"embedding cache {store.path} (schema v{SCHEMA_VERSION}), "
             f"{_human(store.size_bytes())} on disk"]
    if not rows:
        lines.append("  (no vectors)")
    else:
        width = max(len("encoder id"), *(len(r["encoder"]) for r in rows))
        lines.append(f"  {'encoder id':<{width}}  {'modality':<8} {'rows':>9} {'dim':>5} "
                     f"{'precision':<9}")
        for r in rows:
            flag = "  UNTRAINED" if r["untrained"] else ""
            lines.append(f"  {r['encoder']:<{width}}  {r['modality']:<8} {r['rows']:>9} "
                         f"{r['dim']:>5} {r.get('precision') or '-':<9}{flag}")
    lines.append(f"  bad inputs remembered: {counts['bad_inputs']}; dataset map rows: "
                 f"{counts['dataset_map']}")
    return "\n".join(lines)


def cache_clear(cache_root: Path, encoder_spec: str | None) -> int:
    """Remove the vectors of one encoder (by spec, or by cache id) or of all (None); returns the
    number of vectors removed."""
    store = EmbeddingStore(cache_root)
    if encoder_spec is None:
        return store.clear(None)
    ids = {r["encoder"] for r in store.stats()}
    if encoder_spec in ids:
        return store.clear(encoder_spec)
    by_spec = {r["encoder"] for r in store.stats() if r["spec"] == encoder_spec}
    if by_spec:
        return sum(store.clear(i) for i in by_spec)
    from core.encoders import create_encoder
    from core.errors import CacheError

    if encoder_spec.startswith("align:"):
        raise CacheError(
            f"{encoder_spec}: an align: encoder stores no vectors (they are its heads applied to "
            f"its towers' cached vectors); its heads are in {cache_root}/align/<key>.npz — delete "
            "one to train it again, or clear a tower's vectors with --encoder TOWER")
    return store.clear(create_encoder(encoder_spec).id)
