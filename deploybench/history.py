"""The run history: compare runs recorded in an embedded SQLite database.

One ``runs`` row per results document, one ``cells`` row per result row (its key figures
as columns for queries, the whole row as JSON less its raw samples). Recording the same
document twice is a no-op, also when two processes record it at once. The default database
lives in the user's data directory (``$XDG_DATA_HOME/deploybench/history.sqlite``, else
``~/.local/share/...``); ``$DEPLOYBENCH_HISTORY`` or an explicit path overrides it. Readers
(trends, baselines) may open it read-only, so a history on a read-only share can be gated against.

:meth:`History.baseline` turns the last N comparable earlier runs into a synthetic baseline
for the regression gate: per cell, the median of the runs' medians.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from statistics import median
from typing import Any
from urllib.parse import quote

from deploybench.comparability import COMPARED_CONFIG, IncompatibleBaselineError, incompatibilities
from deploybench.errors import DeployBenchError
from deploybench.regress import MAD_TO_SIGMA, robust_spread_ms
from deploybench.results import Results, Row, Status
from deploybench.stats import Stats, per_image_ms

HISTORY_ENV = "DEPLOYBENCH_HISTORY"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30  # generous: the shards or jobs of one night may record into the same file

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    digest TEXT NOT NULL UNIQUE,      -- sha256 of the document: recording twice is a no-op
    created TEXT NOT NULL,            -- when the run started (the document's own timestamp)
    recorded TEXT NOT NULL,
    hostname TEXT,
    fingerprint TEXT NOT NULL,        -- unused: comparability is decided from environment and config when read
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


class MissingHistoryError(NoBaselineError):
    """Nothing was ever recorded at this path (opened read-only, so it is not created)."""


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


def _per_image(point: TrendPoint, batch: int, row: str) -> float | None:
    """ms/img from the point's median, batch and requests in flight, not the stored column: runs
    recorded before ms/img divided by the requests in flight hold median / batch there. Python's
    json, not SQLite's: rows may hold NaN, which SQLite's JSON functions reject before 3.42."""
    requests = json.loads(row).get("requests_in_flight") or 1
    if point.median_ms is None or not batch or requests == 1:
        return point.ms_per_image
    return per_image_ms(point.median_ms, batch, requests)


def _digest(results: Results) -> str:
    return hashlib.sha256(json.dumps(results.to_dict(), sort_keys=True, default=str).encode()).hexdigest()


def _instant(created: str) -> datetime:
    """A document's ``created`` as an aware datetime (naive timestamps are taken as UTC)."""
    try:
        moment = datetime.fromisoformat(created)
    except (TypeError, ValueError):
        raise HistoryError(
            f"run timestamp {created!r} is not an ISO 8601 time; record documents that deploybench compare wrote"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def refuse_shard(shard: Sequence[int] | None, what: str) -> None:
    """One shard of a sweep is not a night: recorded, a partial run would become part of later baselines."""
    index, count = shard or (1, 1)
    if count > 1:
        raise HistoryError(
            f"{what} is shard {index}/{count} of a sweep, and a shard is not recorded in the history; "
            "run the shards without --record, merge them ('deploybench merge SHARD.json ... -o "
            "all.json'), then 'deploybench history --record all.json'"
        )


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch the database to WAL (persistent): readers never wait for a writer, a writer only for another.

    The switch needs the database to itself and SQLite answers "locked" at once rather than
    waiting, so two processes creating the same history retry here until the busy timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class History:
    """A history database.

    Opened for writing (the default), it is created with its folder when missing and
    migrated when older than this deploybench. Opened ``read_only``, nothing is written: a
    missing or never-initialised file raises :class:`MissingHistoryError`.
    """

    def __init__(self, path: Path | str | None = None, read_only: bool = False) -> None:
        self.path = Path(path).expanduser() if path else default_history_path()
        self.read_only = read_only
        if read_only and not self.path.is_file():
            raise MissingHistoryError(
                f"no history at {self.path} yet; record runs with "
                "'deploybench compare ... --record' first, or pass --history PATH"
            )
        # A WAL reader needs the -shm file beside the database; where there is none and none can be
        # created (a read-only share nobody writes to), SQLite reads the file only when told it is immutable.
        shm = Path(f"{self.path}-shm")
        self._immutable = read_only and not shm.exists() and not os.access(self.path.parent, os.W_OK)
        if not read_only:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise HistoryError(
                    f"cannot create the folder of history {self.path} ({exc.strerror}); "
                    "pass --history PATH to a writable file"
                ) from exc
        with self._connect() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise HistoryError(
                f"history {self.path} has schema version {version}, newer than this "
                f"deploybench reads ({SCHEMA_VERSION}); upgrade deploybench or pass another --history"
            )
        if read_only:
            if version < SCHEMA_VERSION:
                raise MissingHistoryError(
                    f"history {self.path} holds no runs recorded by this deploybench; "
                    "record one first ('deploybench history --record RESULTS.json')"
                )
            return
        with self._connect() as conn:
            _use_wal(conn)
        if version < SCHEMA_VERSION:
            self._migrate()

    def _migrate(self) -> None:
        """Bring the schema to :data:`SCHEMA_VERSION` in one write transaction (the only write an open makes)."""
        with self._connect(write=True) as conn:
            if conn.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
                return  # another process migrated it since we looked
            for statement in SCHEMA.split(";"):  # executescript would commit the open transaction
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection; with ``write``, inside one ``BEGIN IMMEDIATE`` transaction (committed on success).

        Every SQLite failure (a locked or corrupt file, a full disk) becomes one :class:`HistoryError`.
        """
        mode = "ro" if self.read_only else "rwc"
        uri = f"file:{quote(str(self.path))}?mode={mode}" + ("&immutable=1" if self._immutable else "")
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            try:
                conn.execute("PRAGMA foreign_keys = ON")
                if write:
                    # Take the write lock before reading, so a check-then-insert cannot race another writer.
                    conn.execute("BEGIN IMMEDIATE")
                yield conn
                if write:
                    conn.execute("COMMIT")
            finally:
                conn.close()  # closing with the transaction still open rolls it back
        except sqlite3.Error as exc:
            raise HistoryError(
                f"history {self.path} cannot be used ({exc}); if another deploybench is writing "
                "to it, retry when it is done, else pass --history PATH to another file"
            ) from exc

    def record(self, results: Results) -> int:
        """Store a run in one transaction; returns its id (the existing one if already recorded)."""
        if self.read_only:
            raise HistoryError(f"history {self.path} was opened read-only; open it for writing to record")
        refuse_shard(results.config.get("shard"), "the document")
        digest = _digest(results)
        with self._connect(write=True) as conn:
            found = conn.execute("SELECT id FROM runs WHERE digest = ?", (digest,)).fetchone()
            if found:
                return int(found[0])
            cursor = conn.execute(
                "INSERT INTO runs (digest, created, recorded, hostname, fingerprint, environment, config) "
                "VALUES (?, ?, ?, ?, '', ?, ?)",
                (
                    digest,
                    results.created,
                    datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    results.environment.get("hostname"),
                    json.dumps(results.environment, default=str),
                    json.dumps(results.config, default=str),
                ),
            )
            assert cursor.lastrowid is not None, "an INSERT gives a row id"
            run_id = cursor.lastrowid
            conn.executemany(
                "INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [self._cell_values(run_id, row) for row in results.rows],
            )
        return run_id

    @staticmethod
    def _cell_values(run_id: int, row: Row) -> tuple:
        stored = row.to_dict()
        stored["samples_ms"] = []  # raw samples stay in the results file; their spread is kept below
        return (
            run_id,
            str(row.key),
            row.model,
            row.format,
            row.runtime,
            row.device,
            row.precision,
            row.batch,
            row.status,
            row.stats.median if row.stats else None,
            robust_spread_ms(row) if row.stats else None,
            row.ms_per_image,
            row.throughput,
            row.peak_rss_mb,
            row.peak_device_mb,
            row.parity_verdict,
            json.dumps(stored, default=str),
        )

    def runs(self) -> list[dict[str, Any]]:
        """Every recorded run, oldest first: id, created, hostname, cell count."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT r.id, r.created, r.hostname, COUNT(c.key) FROM runs r LEFT JOIN cells c "
                "ON c.run_id = r.id GROUP BY r.id ORDER BY r.created, r.id"
            ).fetchall()
        return [{"id": i, "created": c, "hostname": h, "cells": n} for i, c, h, n in rows]

    def trend(
        self,
        model: str | None = None,
        runtime: str | None = None,
        device: str | None = None,
        precision: str | None = None,
        batch: int | None = None,
        last: int | None = None,
    ) -> dict[str, list[TrendPoint]]:
        """Per cell key, its points in run order (the last ``last`` runs only, if given)."""
        filters = {
            "c.model": model,
            "c.runtime": runtime,
            "c.device": device,
            "c.precision": precision,
            "c.batch": batch,
        }
        where = [f"{column} = ?" for column, value in filters.items() if value is not None]
        params: list[Any] = [value for value in filters.values() if value is not None]
        if last:
            where.append("r.id IN (SELECT id FROM runs ORDER BY created DESC, id DESC LIMIT ?)")
            params.append(last)
        query = (
            "SELECT c.key, r.id, r.created, c.status, c.median_ms, c.ms_per_image, c.throughput, "
            "c.peak_rss_mb, c.parity, c.batch, c.row FROM cells c JOIN runs r ON r.id = c.run_id "
            + (f"WHERE {' AND '.join(where)} " if where else "")
            + "ORDER BY c.key, r.created, r.id"
        )
        series: dict[str, list[TrendPoint]] = {}
        with self._connect() as conn:
            for key, *values, batch, row in conn.execute(query, params):
                point = TrendPoint(*values)
                series.setdefault(key, []).append(replace(point, ms_per_image=_per_image(point, batch, row)))
        return series

    def baseline(self, last: int, current: Results | None = None, force: bool = False) -> Results:
        """A baseline from the last ``last`` runs before ``current`` that are comparable with it.

        Only runs that started before ``current`` count (re-gating an old file never looks at
        later nights, and the run that produced ``current`` is never its own baseline).
        Comparable means :func:`~deploybench.comparability.incompatibilities` finds nothing: the same
        machine and library versions, and the same measurement policy and thread count where
        both runs record them; it is decided now, from each run's stored environment and config.
        Per cell: median of the runs' median latencies, ms/image, throughput and peak RSS;
        spread = sqrt(typical within-run spread^2 + spread of the medians across runs^2), so
        night-to-night variation widens the noise band; parity and status from the latest run.
        """
        if last < 1:
            raise HistoryError(f"--baseline-history needs at least 1 run, got {last}")
        candidates = self._run_records()
        if current is not None:
            before = _instant(current.created)
            candidates = [(i, run) for i, run in candidates if _instant(run.created) < before]
        if not candidates:
            raise NoBaselineError(
                f"history {self.path} holds no earlier run to build a baseline from; "
                "record runs with 'deploybench compare ... --record' first"
            )
        if current is not None and not force:
            matching = [(i, run) for i, run in candidates if not incompatibilities(run, current)]
            if not matching:
                raise IncompatibleBaselineError(
                    incompatibilities(candidates[0][1], current), what="latest earlier run in the history"
                )
            candidates = matching
        chosen = candidates[:last]
        run_ids = [run_id for run_id, _ in chosen]
        rows = [_baseline_row(points) for points in self._observations(run_ids).values()]
        latest = chosen[0][1]
        # The settings the chosen runs share travel with the baseline, so compare() checks them too.
        shared = {name: latest.config[name] for name in COMPARED_CONFIG if name in latest.config}
        return Results(
            config={"baseline": "history", "history": str(self.path), "last": last, "runs": run_ids, **shared},
            environment=latest.environment,
            rows=rows,
            created=latest.created,
        )

    def _run_records(self) -> list[tuple[int, Results]]:
        """(id, the run as a document without rows), newest first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id, created, environment, config FROM runs ORDER BY created DESC, id DESC"
            ).fetchall()
        return [
            (run_id, Results(config=json.loads(config), environment=json.loads(environment), created=created))
            for run_id, created, environment, config in rows
        ]

    def _observations(self, run_ids: list[int]) -> dict[str, list[tuple[Row, float | None]]]:
        """Per cell key, (row, spread_ms) of each chosen run, newest first."""
        marks = ",".join("?" * len(run_ids))
        query = (
            f"SELECT c.key, c.row, c.spread_ms FROM cells c JOIN runs r ON r.id = c.run_id "
            f"WHERE c.run_id IN ({marks}) ORDER BY r.created DESC, r.id DESC"
        )
        found: dict[str, list[tuple[Row, float | None]]] = {}
        with self._connect() as conn:
            for key, row, spread in conn.execute(query, run_ids):
                found.setdefault(key, []).append((Row.from_dict(json.loads(row)), spread))
        return found


def _median(row: Row) -> float:
    """The row's median latency; 0 when it has none."""
    value = row.stats.median if row.stats else 0.0
    return 0.0 if math.isnan(value) else value


def _baseline_row(points: list[tuple[Row, float | None]]) -> Row:
    """One synthetic row standing for a cell across several runs (newest first)."""
    latest = points[0][0]
    if latest.status != Status.OK or not latest.stats:
        return latest  # the last known state of the cell is a failure: nothing to time against
    ok = [(row, spread) for row, spread in points if row.status == Status.OK and _median(row)]
    row = Row.from_dict(latest.to_dict())  # status, parity and labels of the latest run
    medians = [_median(r) for r, _ in ok]
    center = median(medians)
    within = median([s for _, s in ok if s is not None] or [0.0])
    across = MAD_TO_SIGMA * median([abs(m - center) for m in medians])
    spread = math.hypot(within, across)
    # Known across the runs: the centre and the spread; a single run's order statistics are not.
    row.stats = Stats.from_dict({"median": center, "std": spread, "cv": spread / center, "n": len(ok)})
    row.ms_per_image = median(
        [r.ms_per_image for r, _ in ok if r.ms_per_image is not None]
        or [per_image_ms(center, row.batch, row.requests_in_flight)]
    )
    throughputs = [r.throughput for r, _ in ok if r.throughput is not None]
    row.throughput = median(throughputs) if throughputs else None
    rss = [r.peak_rss_mb for r, _ in ok if r.peak_rss_mb is not None]
    if rss and row.memory:
        row.memory = replace(row.memory, peak_rss_mb=median(rss), recorded_growth_mb=None)
    return row
