"""The run history: compare runs recorded in an embedded SQLite database.

One ``runs`` row per results document, one ``cells`` row per result row (its key figures
as columns for queries, the whole row as JSON less its raw samples). Recording the same
document twice is a no-op. The default database lives in the user's data directory
(``$XDG_DATA_HOME/deploybench/history.sqlite``, else ``~/.local/share/...``);
``$DEPLOYBENCH_HISTORY`` or an explicit path overrides it.

:meth:`History.baseline` turns the last N compatible runs into a synthetic baseline for
the regression gate: per cell, the median of the runs' medians.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from statistics import median
from typing import Any

from deploybench.errors import DeployBenchError
from deploybench.regress import (MAD_TO_SIGMA, IncompatibleBaselineError, comparable_fields, incompatibilities,
                                 robust_spread_ms)
from deploybench.results import Results, Row

HISTORY_ENV = "DEPLOYBENCH_HISTORY"
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    digest TEXT NOT NULL UNIQUE,      -- sha256 of the document: recording twice is a no-op
    created TEXT NOT NULL,            -- when the run started (the document's own timestamp)
    recorded TEXT NOT NULL,
    hostname TEXT,
    fingerprint TEXT NOT NULL,        -- JSON of the fields a baseline must share (regress.comparable_fields)
    environment TEXT NOT NULL,
    config TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cells (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    model TEXT NOT NULL, format TEXT NOT NULL, runtime TEXT NOT NULL, device TEXT NOT NULL,
    precision TEXT NOT NULL, batch INTEGER NOT NULL,
    status TEXT NOT NULL,
    median_ms REAL, spread_ms REAL, ms_per_image REAL, throughput REAL,
    peak_rss_mb REAL, peak_device_mb REAL, parity TEXT,
    row TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX IF NOT EXISTS cells_by_model ON cells (model, runtime);
"""


class HistoryError(DeployBenchError):
    """A history database that cannot be used."""


class NoBaselineError(HistoryError):
    """The history holds no earlier run to compare with (a first night)."""


def default_history_path() -> Path:
    """``$DEPLOYBENCH_HISTORY``, else ``$XDG_DATA_HOME/deploybench/history.sqlite``, else under ``~/.local/share``."""
    if os.environ.get(HISTORY_ENV):
        return Path(os.environ[HISTORY_ENV]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "deploybench" / "history.sqlite"


@dataclass(frozen=True)
class TrendPoint:
    """One cell in one recorded run."""

    run_id: int
    created: str
    status: str
    median_ms: float | None
    ms_per_image: float | None
    throughput: float | None
    peak_rss_mb: float | None
    parity: str | None


def _digest(results: Results) -> str:
    return hashlib.sha256(json.dumps(results.to_dict(), sort_keys=True, default=str).encode()).hexdigest()


def _fingerprint(environment: dict[str, Any]) -> str:
    return json.dumps(comparable_fields(environment), sort_keys=True)


class History:
    """A history database; opening one creates it (and its folder) when missing."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path).expanduser() if path else default_history_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(self._connect()) as conn, conn:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise HistoryError(f"history {self.path} has schema version {version}, newer than this "
                                       f"deploybench reads ({SCHEMA_VERSION}); upgrade deploybench or pass "
                                       "another --history")
                conn.executescript(SCHEMA)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except (OSError, sqlite3.Error) as exc:
            raise HistoryError(f"cannot open history database {self.path} ({exc}); "
                               "pass --history PATH to a writable file") from exc

    def _connect(self) -> sqlite3.Connection:
        # A generous timeout: several shards of one nightly may record into the same file.
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def record(self, results: Results) -> int:
        """Store a run in one transaction; returns its id (the existing one if already recorded)."""
        digest = _digest(results)
        with closing(self._connect()) as conn, conn:
            found = conn.execute("SELECT id FROM runs WHERE digest = ?", (digest,)).fetchone()
            if found:
                return int(found[0])
            cursor = conn.execute(
                "INSERT INTO runs (digest, created, recorded, hostname, fingerprint, environment, config) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (digest, results.created, datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 results.environment.get("hostname"), _fingerprint(results.environment),
                 json.dumps(results.environment, default=str), json.dumps(results.config, default=str)))
            run_id = int(cursor.lastrowid)
            conn.executemany(
                "INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [self._cell_values(run_id, row) for row in results.rows])
        return run_id

    @staticmethod
    def _cell_values(run_id: int, row: Row) -> tuple:
        stats = row.stats or {}
        stored = row.to_dict()
        stored["samples_ms"] = []  # raw samples stay in the results file; their spread is kept below
        return (run_id, row.key, row.model, row.format, row.runtime, row.device, row.precision, row.batch, row.status,
                stats.get("median"), robust_spread_ms(row) if stats else None, row.ms_per_image, row.throughput,
                row.memory.get("peak_rss_mb"), row.memory.get("peak_device_mb"), row.parity_verdict,
                json.dumps(stored, default=str))

    def runs(self) -> list[dict[str, Any]]:
        """Every recorded run, oldest first: id, created, hostname, cell count."""
        with closing(self._connect()) as conn:
            rows = conn.execute("SELECT r.id, r.created, r.hostname, COUNT(c.key) FROM runs r LEFT JOIN cells c "
                                "ON c.run_id = r.id GROUP BY r.id ORDER BY r.created, r.id").fetchall()
        return [{"id": i, "created": c, "hostname": h, "cells": n} for i, c, h, n in rows]

    def trend(self, model: str | None = None, runtime: str | None = None, device: str | None = None,
              precision: str | None = None, batch: int | None = None,
              last: int | None = None) -> dict[str, list[TrendPoint]]:
        """Per cell key, its points in run order (the last ``last`` runs only, if given)."""
        filters = {"c.model": model, "c.runtime": runtime, "c.device": device, "c.precision": precision,
                   "c.batch": batch}
        where = [f"{column} = ?" for column, value in filters.items() if value is not None]
        params: list[Any] = [value for value in filters.values() if value is not None]
        if last:
            where.append("r.id IN (SELECT id FROM runs ORDER BY created DESC, id DESC LIMIT ?)")
            params.append(last)
        query = ("SELECT c.key, r.id, r.created, c.status, c.median_ms, c.ms_per_image, c.throughput, "
                 "c.peak_rss_mb, c.parity FROM cells c JOIN runs r ON r.id = c.run_id "
                 + (f"WHERE {' AND '.join(where)} " if where else "") + "ORDER BY c.key, r.created, r.id")
        series: dict[str, list[TrendPoint]] = {}
        with closing(self._connect()) as conn:
            for key, *values in conn.execute(query, params):
                series.setdefault(key, []).append(TrendPoint(*values))
        return series

    def baseline(self, last: int, current: Results | None = None, force: bool = False) -> Results:
        """A baseline from the last ``last`` runs that match ``current``'s machine and libraries.

        The run that produced ``current`` (same start time and host) is never its own baseline.
        Per cell: median of the runs' median latencies, ms/image, throughput and peak RSS;
        spread = sqrt(typical within-run spread^2 + spread of the medians across runs^2), so
        night-to-night variation widens the noise band; parity and status from the latest run.
        """
        if last < 1:
            raise HistoryError(f"--baseline-history needs at least 1 run, got {last}")
        candidates = [r for r in self._run_records()
                      if current is None or (r["created"], r["hostname"]) !=
                      (current.created, current.environment.get("hostname"))]
        if not candidates:
            raise NoBaselineError(f"history {self.path} holds no earlier run to build a baseline from; "
                               "record runs with 'deploybench compare ... --history' first")
        if current is not None and not force:
            wanted = _fingerprint(current.environment)
            matching = [r for r in candidates if r["fingerprint"] == wanted]
            if not matching:
                latest = Results(environment=candidates[0]["environment"])
                raise IncompatibleBaselineError(incompatibilities(latest, current),
                                                what="latest run in the history")
            candidates = matching
        chosen = candidates[:last]
        observations = self._observations([r["id"] for r in chosen])
        rows = [_baseline_row(points) for points in observations.values()]
        return Results(config={"baseline": "history", "history": str(self.path), "last": last,
                               "runs": [r["id"] for r in chosen]},
                       environment=chosen[0]["environment"], rows=rows, created=chosen[0]["created"])

    def _run_records(self) -> list[dict[str, Any]]:
        """Runs newest first, with their environments decoded."""
        with closing(self._connect()) as conn:
            rows = conn.execute("SELECT id, created, hostname, fingerprint, environment FROM runs "
                                "ORDER BY created DESC, id DESC").fetchall()
        return [{"id": i, "created": c, "hostname": h, "fingerprint": f, "environment": json.loads(e)}
                for i, c, h, f, e in rows]

    def _observations(self, run_ids: list[int]) -> dict[str, list[tuple[Row, float | None]]]:
        """Per cell key, (row, spread_ms) of each chosen run, newest first."""
        marks = ",".join("?" * len(run_ids))
        query = (f"SELECT c.key, c.row, c.spread_ms FROM cells c JOIN runs r ON r.id = c.run_id "
                 f"WHERE c.run_id IN ({marks}) ORDER BY r.created DESC, r.id DESC")
        found: dict[str, list[tuple[Row, float | None]]] = {}
        with closing(self._connect()) as conn:
            for key, row, spread in conn.execute(query, run_ids):
                found.setdefault(key, []).append((Row.from_dict(json.loads(row)), spread))
        return found


def _baseline_row(points: list[tuple[Row, float | None]]) -> Row:
    """One synthetic row standing for a cell across several runs (newest first)."""
    latest = points[0][0]
    if latest.status != "ok" or not latest.stats:
        return latest  # the last known state of the cell is a failure: nothing to time against
    ok = [(row, spread) for row, spread in points if row.status == "ok" and row.stats and row.stats.get("median")]
    row = Row.from_dict(latest.to_dict())  # status, parity and labels of the latest run
    medians = [r.stats["median"] for r, _ in ok]  # type: ignore[index]
    center = median(medians)
    within = median([s for _, s in ok if s is not None] or [0.0])
    across = MAD_TO_SIGMA * median([abs(m - center) for m in medians])
    spread = math.hypot(within, across)
    row.stats = {"median": center, "std": spread, "cv": spread / center, "n": len(ok)}
    row.ms_per_image = median([r.ms_per_image for r, _ in ok if r.ms_per_image is not None] or [center / row.batch])
    throughputs = [r.throughput for r, _ in ok if r.throughput is not None]
    row.throughput = median(throughputs) if throughputs else None
    rss = [r.memory["peak_rss_mb"] for r, _ in ok if r.memory.get("peak_rss_mb") is not None]
    if rss:
        row.memory = dict(row.memory, peak_rss_mb=median(rss))
    return row
