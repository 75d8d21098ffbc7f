"""Join results documents, typically the shards of one sweep (``compare --shard I/N``).

The documents must share a schema version and a configuration (apart from the shard and
the command line that named it) and come from comparable machines; their rows are
united. A cell present in two documents is an error unless both rows are identical.
"""

from __future__ import annotations

from typing import Any, Sequence

from deploybench.errors import ResultsError
from deploybench.regress import IncompatibleBaselineError, incompatibilities
from deploybench.results import Results, Row

# Config keys that legitimately differ between the shards of one sweep.
PER_SHARD_KEYS = ("shard", "argv", "merged_from")


class MergeError(ResultsError):
    """Documents that do not belong together."""


def _comparable_config(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in PER_SHARD_KEYS}


def _origin(results: Results) -> dict[str, Any]:
    return {"created": results.created, "hostname": results.environment.get("hostname"),
            "shard": results.config.get("shard")}


def _check_together(documents: Sequence[Results], force: bool) -> None:
    first = documents[0]
    for index, other in enumerate(documents[1:], start=2):
        if other.schema_version != first.schema_version:
            raise MergeError(f"document {index} has schema version {other.schema_version}, document 1 has "
                             f"{first.schema_version}; re-run both with the same deploybench")
        old, new = _comparable_config(first.config), _comparable_config(other.config)
        differing = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        if differing:
            details = "; ".join(f"{k}: {old.get(k)!r} vs {new.get(k)!r}" for k in differing)
            raise MergeError(f"document {index} was run with another configuration than document 1 ({details}); "
                             "only shards of one sweep can be merged")
        differences = incompatibilities(first, other)
        if differences and not force:
            raise IncompatibleBaselineError(differences, what=f"document {index} (against document 1)")


def merge(documents: Sequence[Results], force: bool = False) -> Results:
    """One document holding every row of ``documents``; the first one's environment is kept."""
    if not documents:
        raise MergeError("nothing to merge; name at least one results file")
    _check_together(documents, force)
    rows: dict[str, Row] = {}
    owner: dict[str, int] = {}
    for index, document in enumerate(documents, start=1):
        for row in document.rows:
            if row.key in rows and rows[row.key].to_dict() != row.to_dict():
                raise MergeError(f"cell {row.key} is in document {owner[row.key]} and document {index} with different "
                                 "results; merge shards of one sweep, or drop one of the two documents")
            rows.setdefault(row.key, row)
            owner.setdefault(row.key, index)
    first = documents[0]
    config = dict(first.config, shard=[1, 1], merged_from=[_origin(d) for d in documents])
    return Results(config=config, environment=first.environment, rows=list(rows.values()),
                   created=min(d.created for d in documents), schema_version=first.schema_version)


def missing_shards(documents: Sequence[Results]) -> list[str]:
    """Shards ``I/N`` of the sweep that none of ``documents`` holds (empty when complete or unsharded)."""
    shards = {tuple(d.config.get("shard") or (1, 1)) for d in documents}
    counts = {count for _, count in shards}
    if len(counts) != 1:
        return []  # shards of different splits: coverage cannot be told from the indices
    count = counts.pop()
    have = {index for index, _ in shards}
    return [f"{i}/{count}" for i in range(1, count + 1) if i not in have]
