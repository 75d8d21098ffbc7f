"""Main-job benchmark: ``make compare``'s command from an empty cache, then warm, timed by phase.

Runs ``deploybench compare --models yolov8n,mobilenetv4 --target cpu`` (the command ``make
compare`` runs, in this environment: the venv is not part of the time) once with an empty
artifact cache (cold) and ``--runs - 1`` more times on the cache it filled (warm), each into
a fresh output folder. For every run it reports:

- wall time, split into the phases the rows record: exports (cache misses), runtime loads,
  warm-up, timed windows, parity checks, and the rest (worker start-up, model builds,
  reference outputs, reports);
- the peak RSS of the parent ``deploybench`` process (the kernel's high-water mark, read at
  exit), apart from the worker processes that measure each cell;
- the exit status and the rows' statuses and parity verdicts;

and, over all runs, the spread of each row's median ms/image ((max - min) / median). With
``--readme`` the table goes between the main-job markers and the last run's printed table
between the main-job-output markers.

    python benchmarks/main_job.py [--runs 3] [--models yolov8n,mobilenetv4] [--readme]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_block import write_block

# Runs deploybench as its console script does, and writes the process's own peak RSS (VmHWM)
# to $DEPLOYBENCH_PEAK_FILE at exit: the parent alone, not its worker processes.
PARENT = """
import atexit, os, runpy, sys
def _peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            open(os.environ["DEPLOYBENCH_PEAK_FILE"], "w").write(line.split()[1])
atexit.register(_peak)
sys.argv = ["deploybench", *sys.argv[1:]]
runpy.run_module("deploybench", run_name="__main__")
"""


@dataclass
class Run:
    """One ``compare`` run and what its results say about where the time went."""

    label: str
    exit_code: int
    wall_s: float
    parent_peak_mb: float
    rows: list[dict]
    table: str

    def seconds(self, key: str) -> float:
        return sum(row.get(key) or 0.0 for row in self.rows)

    @property
    def export_s(self) -> float:
        # An artifact serves several rows; count each export once, and only when it was built now.
        built = {
            row["artifact"]["path"]: row["artifact"].get("export_seconds") or 0.0
            for row in self.rows
            if row.get("artifact", {}).get("path") and not row["artifact"].get("cache_hit")
        }
        return sum(built.values())

    @property
    def statuses(self) -> str:
        counts = Counter(row["status"] for row in self.rows)
        verdicts = Counter((row.get("parity") or {}).get("verdict", "-") for row in self.rows)
        return (
            ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            + "; parity "
            + ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
        )


def run_compare(label: str, models: str, cache: Path, out: Path) -> Run:
    peak_file = out.parent / f"{out.name}.peak"
    env = {**os.environ, "DEPLOYBENCH_CACHE": str(cache), "DEPLOYBENCH_PEAK_FILE": str(peak_file)}
    command = [
        sys.executable,
        "-c",
        PARENT,
        "compare",
        "--models",
        models,
        "--target",
        "cpu",
        "--out",
        str(out),
        "--html",
        str(out / "report.html"),
    ]
    print(f"{label}: {' '.join(command[3:])}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    results = out / "results.json"
    rows = json.loads(results.read_text())["rows"] if results.exists() else []
    peak = int(peak_file.read_text()) / 1024 if peak_file.exists() else float("nan")
    print(f"{label}: exit {done.returncode} in {wall:.0f} s", file=sys.stderr, flush=True)
    return Run(label, done.returncode, wall, peak, rows, done.stdout)


def row_key(row: dict) -> tuple:
    return tuple(row[k] for k in ("model", "format", "runtime", "precision", "batch"))


def per_row(runs: list[Run]) -> dict[tuple, list[float]]:
    """Each row's ms/image in every run where it ran."""
    by_row: dict[tuple, list[float]] = {}
    for run in runs:
        for row in run.rows:
            if row["status"] == "ok" and row.get("ms_per_image"):
                by_row.setdefault(row_key(row), []).append(row["ms_per_image"])
    return {key: values for key, values in by_row.items() if len(values) == len(runs)}


def spread(runs: list[Run]) -> tuple[float, float, int]:
    """Median and largest (max - min) / median of each row's ms/image over the runs, and the rows counted."""
    spreads = [(max(v) - min(v)) / statistics.median(v) for v in per_row(runs).values()]
    return (statistics.median(spreads), max(spreads), len(spreads)) if spreads else (float("nan"), float("nan"), 0)


def run_speeds(runs: list[Run]) -> dict[str, dict[str, float]]:
    """Per run and model, the median of its rows' ms/image over each row's median across runs.

    One row drifting is noise in that row; every row of a model moving together in one run is
    the machine changing speed while that model ran (a shared VM's neighbours, its clock).
    """
    medians = {key: statistics.median(values) for key, values in per_row(runs).items()}
    speeds: dict[str, dict[str, float]] = {}
    for run in runs:
        ratios: dict[str, list[float]] = {}
        for row in run.rows:
            key = row_key(row)
            if key in medians and row.get("ms_per_image"):
                ratios.setdefault(row["model"], []).append(row["ms_per_image"] / medians[key])
        speeds[run.label] = {model: statistics.median(values) for model, values in ratios.items()}
    return speeds


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def render(runs: list[Run], models: str) -> str:
    cpu = platform.processor() or platform.machine()
    cores = len(os.sched_getaffinity(0))
    lines = [
        f"Written by `python benchmarks/main_job.py --runs {len(runs)} --readme` on "
        f"{time.strftime('%Y-%m-%d')}, {cpu}, {cores} usable cores: `deploybench compare --models {models} "
        "--target cpu` with an empty cache, then warm (venv not included).",
        "",
        "| run | exit | wall | exports | loads | warm-up | timed windows | parity | rest | parent peak RSS | rows |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        phases = [
            run.export_s,
            *(run.seconds(key) for key in ("load_seconds", "warmup_seconds", "window_seconds", "parity_seconds")),
        ]
        cells = " | ".join(f"{seconds:.0f} s" for seconds in [*phases, run.wall_s - sum(phases)])
        lines.append(
            f"| {run.label} | {run.exit_code} | {minutes(run.wall_s)} | {cells} | "
            f"{run.parent_peak_mb:,.0f} MB | {run.statuses} |"
        )
    typical, worst, counted = spread(runs)
    lines += [
        "",
        f"Run-to-run spread of each row's median ms/image over the {len(runs)} runs "
        f"((max - min) / median, {counted} rows): median {typical:.1%}, largest {worst:.1%}. "
        "Each run's rows against their medians over the runs (the median ratio per model; above "
        "1 is slower, and all of a model's rows moving together is the machine, not the rows): "
        + "; ".join(
            f"{label} " + ", ".join(f"{model} {ratio:.2f}" for model, ratio in by_model.items())
            for label, by_model in run_speeds(runs).items()
        )
        + ".",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="yolov8n,mobilenetv4")
    parser.add_argument("--runs", type=int, default=3, help="1 cold run, then warm ones (default: 3 in all)")
    parser.add_argument("--readme", action="store_true", help="Write the tables into README.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deploybench-main-job-") as tmp:
        cache = Path(tmp) / "cache"
        runs = [
            run_compare("cold" if i == 0 else f"warm {i}", args.models, cache, Path(tmp) / f"run{i}")
            for i in range(args.runs)
        ]
    text = render(runs, args.models)
    for key, values in per_row(runs).items():  # where the spread comes from, for whoever reads the log
        print(" ".join(map(str, key)), " ".join(f"{v:.3f}" for v in values), file=sys.stderr)
    print(text)
    if args.readme:
        write_block("main-job", text)
        write_block("main-job-output", f"```text\n{runs[-1].table.rstrip()}\n```")
    return max(run.exit_code for run in runs)


if __name__ == "__main__":
    sys.exit(main())
