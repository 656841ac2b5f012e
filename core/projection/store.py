"""DuckDB storage of 2-D coordinates: ``<cache>/projections.duckdb``, one row per mapped point."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from core.store.base import DuckStore

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS projections (
    key VARCHAR PRIMARY KEY, info VARCHAR, n INTEGER, created DOUBLE);
CREATE TABLE IF NOT EXISTS coords (key VARCHAR, row INTEGER, x FLOAT, y FLOAT);
"""


class ProjectionStore(DuckStore):
    """Coordinates keyed by ``core.projection.projection_key`` in the DuckDB file at ``path``
    (created on first use; short-lived connections, see ``core.store.base``)."""

    what = "projection cache"
    schema = _SCHEMA
    schema_version = SCHEMA_VERSION
    remedy = "delete the file to start afresh (maps are recomputed on demand)"
    default_lock_timeout = 10.0

    def get(self, key: str) -> np.ndarray | None:
        """The stored ``(n, 2)`` coordinates of ``key``, or ``None``."""
        with self.connect() as con:
            found = con.execute("SELECT count(*) FROM projections WHERE key = ?", [key]).fetchall()
            if found[0][0]:
                rows = con.execute(
                    "SELECT x, y FROM coords WHERE key = ? ORDER BY row", [key]
                ).fetchnumpy()
                return np.stack([rows["x"], rows["y"]], axis=1).astype(np.float32)
        return None

    def put(self, key: str, coords: np.ndarray, info: Mapping[str, Any]) -> None:
        """Store ``coords`` under ``key`` in one transaction (replacing any previous rows)."""
        import pandas as pd

        frame = pd.DataFrame({
            "key": key, "row": np.arange(len(coords), dtype=np.int32),
            "x": coords[:, 0].astype(np.float32), "y": coords[:, 1].astype(np.float32),
        })
        with self.connect(write=True) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute("DELETE FROM coords WHERE key = ?", [key])
                con.execute("DELETE FROM projections WHERE key = ?", [key])
                con.register("_incoming", frame)
                con.execute("INSERT INTO coords SELECT * FROM _incoming")
                con.unregister("_incoming")
                con.execute("INSERT INTO projections VALUES (?, ?, ?, ?)",
                            [key, json.dumps(dict(info), default=str), len(coords), time.time()])
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise

    def timings(self, limit: int = 20) -> list[tuple[int, float, bool]]:
        """``(points, seconds, cold)`` of the latest ``limit`` stored maps that recorded how long
        their UMAP took (``cold``: it included numba's one-time compilation), newest first."""
        with self.connect() as con:
            rows = con.execute(
                "SELECT n, info FROM projections WHERE info LIKE '%\"timing\"%' "
                "ORDER BY created DESC LIMIT ?", [int(limit)]).fetchall()
        out = []
        for n, info in rows:
            timing = json.loads(info).get("timing") or {}
            if "seconds" in timing:
                out.append((int(n), float(timing["seconds"]), bool(timing.get("cold"))))
        return out
