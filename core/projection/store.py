"""DuckDB storage of 2-D coordinates: ``<cache>/projections.duckdb``, one row per mapped point."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from core.store.connect import connect_with_retry

_SCHEMA = """
CREATE TABLE IF NOT EXISTS projections (
    key VARCHAR PRIMARY KEY, info VARCHAR, n INTEGER, created DOUBLE);
CREATE TABLE IF NOT EXISTS coords (key VARCHAR, row INTEGER, x FLOAT, y FLOAT);
"""


class ProjectionStore:
    """Coordinates keyed by ``core.projection.projection_key``; short-lived connections with a
    retry while another process holds the write lock (then ``CacheError`` naming the file)."""

    def __init__(self, path: str | Path, lock_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute(_SCHEMA)

    def _connect(self):
        return connect_with_retry(self.path, self.lock_timeout, "projection cache")

    def get(self, key: str) -> np.ndarray | None:
        """The stored ``(n, 2)`` coordinates of ``key``, or ``None``."""
        with self._connect() as con:
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
        with self._connect() as con:
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
