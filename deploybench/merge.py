"""Join results documents, typically the shards of one sweep (``compare --shard I/N``).

The documents must be shards of one split (the same shard count), share a configuration
(apart from the shard and the command line that named it) and come from comparable
machines; their rows are united. A cell present in two documents is an error unless both
rows are identical. The merged document records how many shards the sweep had and which of
them were not among the inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deploybench.comparability import IncompatibleBaselineError, incompatibilities
from deploybench.errors import ResultsError
from deploybench.results import CellKey, Results, Row

# Config keys that legitimately differ between the shards of one sweep (or the documents merged from them).
PER_SHARD_KEYS = ("shard", "argv", "merged_from", "shards", "missing_shards")


class MergeError(ResultsError):
    """Documents that do not belong together."""


def _comparable_config(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in PER_SHARD_KEYS}


def _shard(results: Results) -> tuple[int, int]:
    """``(I, N)`` of a document; an unsharded one is 1/1."""
    index, count = results.config.get("shard") or (1, 1)
    return int(index), int(count)


def _origin(results: Results) -> dict[str, Any]:
    return {
        "created": results.created,
        "hostname": results.environment.get("hostname"),
        "shard": results.config.get("shard"),
    }


def _check_together(documents: Sequence[Results], force: bool) -> None:
    first = documents[0]
    for index, other in enumerate(documents[1:], start=2):
        if _shard(other)[1] != _shard(first)[1]:
            raise MergeError(
                f"document {index} is shard {'/'.join(map(str, _shard(other)))} and document 1 is shard "
                f"{'/'.join(map(str, _shard(first)))}: they come from different splits; merge the "
                "shards of one 'compare --shard I/N' sweep (the same N)"
            )
        old, new = _comparable_config(first.config), _comparable_config(other.config)
        differing = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        if differing:
            details = "; ".join(f"{k}: {old.get(k)!r} vs {new.get(k)!r}" for k in differing)
            raise MergeError(
                f"document {index} was run with another configuration than document 1 ({details}); "
                "only shards of one sweep can be merged"
            )
        differences = incompatibilities(first, other)
        if differences and not force:
            raise IncompatibleBaselineError(differences, what=f"document {index} (against document 1)")


def missing_shards(documents: Sequence[Results]) -> list[str]:
    """Shards ``I/N`` of the split that none of ``documents`` holds (empty when complete or unsharded).

    The documents are assumed to share N, as :func:`merge` requires.
    """
    count = _shard(documents[0])[1] if documents else 1
    have = {_shard(d)[0] for d in documents}
    return [f"{i}/{count}" for i in range(1, count + 1) if i not in have]


def merge(documents: Sequence[Results], force: bool = False) -> Results:
    """One document holding every row of ``documents``; the first one's environment is kept.

    Its config says ``shards`` (N of the split) and ``missing_shards`` (``["2/3"]``, empty when
    every shard was merged), and where each part came from (``merged_from``).
    """
    if not documents:
        raise MergeError("nothing to merge; name at least one results file")
    _check_together(documents, force)
    rows: dict[CellKey, Row] = {}
    owner: dict[CellKey, int] = {}
    for index, document in enumerate(documents, start=1):
        for row in document.rows:
            if row.key in rows and rows[row.key].to_dict() != row.to_dict():
                raise MergeError(
                    f"cell {row.key} is in document {owner[row.key]} and document {index} with different "
                    "results; merge shards of one sweep, or drop one of the two documents"
                )
            rows.setdefault(row.key, row)
            owner.setdefault(row.key, index)
    first = documents[0]
    config = dict(
        first.config,
        shard=[1, 1],
        shards=_shard(first)[1],
        missing_shards=missing_shards(documents),
        merged_from=[_origin(d) for d in documents],
    )
    models = {name: facts for document in documents for name, facts in document.models.items()}
    return Results(
        config=config,
        environment=first.environment,
        rows=list(rows.values()),
        models=models,
        created=min(d.created for d in documents),
        schema_version=first.schema_version,
    )
