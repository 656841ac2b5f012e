"""Dataset snapshots: a loaded ``Dataset`` kept in the cache, reused while its source is unchanged.

Loading parses the source files every time: about 1.2 s for the demo on 2 cores, about 75 s for
2M Yelp reviews. ``load_dataset`` keeps what it loaded in ``<cache>/datasets/<key>/``
(``dataset.pkl``, plus ``texts.parquet`` when the review texts live in a Parquet file, moved there
rather than copied) and reads that back while the key is the same. The key is a SHA-256 of:

- ``SNAPSHOT_FORMAT`` and the spec;
- the ``LoadOptions`` (every field);
- the loader code: the bytes of every ``.py`` file under ``core/data`` (so a changed loader never
  reads an old snapshot);
- the source: the relative path, size and modification time (ns) of every file under the source
  folder, photos included (a photo replaced, added or removed gives a new key), and the content
  of the folder's own files (the data files, not the photo folders) up to ``HASH_MAX_BYTES`` each,
  so a file rewritten at the same size within the clock's resolution still gives a new key.

Where it applies: ``demo``, ``yelp:``, ``movielens:`` and ``mmrec:`` (one folder holds what they
read). ``csv:`` configs may name files anywhere, so they are always loaded from their files.
``MMREC_DATASET_SNAPSHOTS=0`` turns snapshots off. The ``KEEP`` most recently used snapshots stay;
older ones are removed when a new one is written, except those a running process has loaded (it
leaves an ``in-use.<pid>`` file there: a dataset's review texts are read from the snapshot for as
long as it is in use). A snapshot that cannot be read (truncated,
written by another version of a library) is removed and the dataset is loaded from its files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pickle
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from core.data.dataset import Dataset
from core.data.texts import ParquetTexts

#: Bump when the stored layout changes.
SNAPSHOT_FORMAT = 1
#: Environment switch: ``0`` / ``false`` / ``off`` turns snapshots off.
SNAPSHOT_ENV = "MMREC_DATASET_SNAPSHOTS"
#: Snapshots kept (the most recently used; each holds a dataset's ids and, for Yelp, its texts).
KEEP = 6
#: Folder under the cache directory.
FOLDER = "datasets"
#: Files directly in the source folder up to this size are part of the key by content too.
HASH_MAX_BYTES = 256 * 2**20

_log = logging.getLogger(__name__)
_CODE = Path(__file__).resolve().parent


def enabled() -> bool:
    """Whether ``MMREC_DATASET_SNAPSHOTS`` leaves snapshots on (the default)."""
    return os.environ.get(SNAPSHOT_ENV, "").strip().lower() not in ("0", "false", "off", "no")


def snapshot_key(spec: str, options, root: Path) -> str:
    """The key of ``spec`` loaded with ``options`` from the folder ``root`` (module docstring)."""
    h = hashlib.sha256()
    fields = dataclasses.asdict(options)
    h.update(json.dumps({"format": SNAPSHOT_FORMAT, "spec": spec, "options": fields},
                        sort_keys=True, default=str).encode())
    for path in sorted(_CODE.rglob("*.py")):
        h.update(str(path.relative_to(_CODE)).encode())
        h.update(path.read_bytes())
    root = Path(root).resolve()
    h.update(str(root).encode())
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            try:
                st = os.stat(full)
            except OSError:  # vanished while walking: part of the key as such
                h.update(f"{full}\0gone\n".encode())
                continue
            h.update(f"{os.path.relpath(full, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            if dirpath == str(root) and st.st_size <= HASH_MAX_BYTES:
                with open(full, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
    return h.hexdigest()[:32]


def cached(spec: str, options, root: Path | None, cache_root: Path,
           load: Callable[[], Dataset]) -> Dataset:
    """``load()``'s dataset, or its snapshot when the key matches (module docstring); ``root``
    None (or snapshots off) always loads."""
    if root is None or not enabled():
        return load()
    key = snapshot_key(spec, options, root)
    folder = Path(cache_root) / FOLDER / key
    ds = _read(folder)
    if ds is not None:
        return ds
    ds = load()
    try:
        ds = _write(ds, folder)
    except OSError as exc:  # a full or read-only disk: the dataset is loaded all the same
        _log.warning("dataset snapshot %s not written: %s", folder, exc)
    _prune(folder.parent)
    return ds


def _read(folder: Path) -> Dataset | None:
    path = folder / "dataset.pkl"
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as f:
            fields = pickle.load(f)
        texts = fields.get("texts")
        if isinstance(texts, ParquetTexts):  # stored with the file's name only
            fields["texts"] = ParquetTexts(folder / texts.path.name, texts.n, texts.nonblank())
            if not fields["texts"].path.is_file():
                raise FileNotFoundError(fields["texts"].path)
        ds = Dataset(**fields)
    except Exception as exc:  # noqa: BLE001 - any unreadable snapshot: load from the files
        _log.warning("dataset snapshot %s unreadable (%s: %s); loading from the files",
                     folder, type(exc).__name__, exc)
        shutil.rmtree(folder, ignore_errors=True)
        return None
    _mark_in_use(folder)
    return ds


def _mark_in_use(folder: Path) -> None:
    """Most recently used now (for ``_prune``), and in use by this process."""
    try:
        (folder / f"in-use.{os.getpid()}").touch()
        os.utime(folder)
    except OSError:
        pass


def _in_use(folder: Path) -> bool:
    """Whether a live process has loaded this snapshot (stale markers are removed)."""
    live = False
    for marker in folder.glob("in-use.*"):
        try:
            pid = int(marker.suffix[1:])
            if pid == os.getpid():
                live = True
                continue
            os.kill(pid, 0)
            live = True
        except ProcessLookupError:
            marker.unlink(missing_ok=True)
        except (ValueError, PermissionError, OSError):
            live = True  # someone else's process, or a name we did not write: keep it
    return live


def _write(ds: Dataset, folder: Path) -> Dataset:
    """Store ``ds`` in ``folder`` (written beside it, then renamed into place, so a reader never
    sees half a snapshot); the dataset to use from now on (its texts moved into the snapshot)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.{os.getpid()}.{time.monotonic_ns()}"
    tmp.mkdir()
    try:
        fields = {f.name: getattr(ds, f.name) for f in dataclasses.fields(ds)}
        texts = ds.texts
        if isinstance(texts, ParquetTexts):
            shutil.move(str(texts.path), str(tmp / "texts.parquet"))
            fields["texts"] = ParquetTexts("texts.parquet", texts.n, texts.nonblank())
        with open(tmp / "dataset.pkl", "wb") as f:
            pickle.dump(fields, f, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            os.rename(tmp, folder)
        except OSError:  # another process stored the same snapshot first: use theirs
            if not (folder / "dataset.pkl").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        if isinstance(ds.texts, ParquetTexts) and not ds.texts.path.is_file():
            moved = tmp / "texts.parquet"  # put the texts back where the dataset reads them
            if moved.is_file():
                shutil.move(str(moved), str(ds.texts.path))
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if isinstance(texts, ParquetTexts):
        ds.texts = ParquetTexts(folder / "texts.parquet", texts.n, texts.nonblank())
    _mark_in_use(folder)
    return ds


def _prune(parent: Path) -> None:
    """Remove all but the ``KEEP`` most recently used snapshots (and stale half-written ones)."""
    try:
        entries = [p for p in parent.iterdir() if p.is_dir()]
    except OSError:
        return
    done = [p for p in entries if not p.name.startswith(".")]
    done.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in done[KEEP:]:
        if not _in_use(old):
            shutil.rmtree(old, ignore_errors=True)
    day = 24 * 3600
    for half in (p for p in entries if p.name.startswith(".")):
        try:
            if time.time() - half.stat().st_mtime > day:
                shutil.rmtree(half, ignore_errors=True)
        except OSError:
            pass
