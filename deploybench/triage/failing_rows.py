"""``compare --triage``: triage every row that failed parity, once per model, format, runtime and precision."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from deploybench.cache import ArtifactCache
from deploybench.errors import DeployBenchError
from deploybench.models import resolve
from deploybench.results import Results
from deploybench.triage.diagnose import TriageOptions, triage
from deploybench.triage.taps import TAPS


def triage_failing_rows(
    results: Results, config: Any, cache: ArtifactCache, progress: Callable[[str], None] = lambda m: None
) -> int:
    """Attach a triage to each row that failed parity (``row.triage``); returns how many triages ran."""
    from deploybench.sweep import _export_batch_range

    export = replace(config.export, batch=_export_batch_range(config.batch_sizes))
    done: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for row in results.rows:
        if row.parity_verdict != "fail" or row.precision == "fp32" or row.runtime not in TAPS:
            continue
        key = (row.model, row.format, row.runtime, row.precision)
        if key not in done:
            options = TriageOptions(
                format=row.format,
                precision=row.precision,
                runtime=row.runtime,
                images_dir=config.images_dir,
                threads=config.threads,
                tolerance=config.tolerance,
                export=export,
            )
            ref = config.model_ref(row.model)
            progress(f"{row.model} {row.runtime}/{row.format} {row.precision}: triage ...")
            try:
                done[key] = triage(resolve(ref), options, cache, progress).to_dict()
            except DeployBenchError as exc:  # one row's triage failing does not end the report
                progress(f"{row.model} {row.runtime}/{row.format} {row.precision}: triage failed: {exc}")
                done[key] = {}
        if done[key]:
            row.triage = done[key]
    return sum(1 for value in done.values() if value)
