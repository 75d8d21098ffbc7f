"""Does the memory sampler disturb the timed loop? Sampler off vs on, through the real worker path.

Each round runs the same cell (same artifact, threads and batch) in a fresh worker process
three ways, in alternating order:

- off: no memory window at all;
- rss: what deploybench does, the kernel's RSS high-water mark reset at the window's start
  (no thread while timing on a CPU-only machine; on a GPU, an NVML thread at the lowest
  priority every 50 ms);
- rss-sampled: a thread sampling RSS every 10 ms at normal priority, as deploybench did before.

Reported: the median of each round's median latency, and its ratio to "off".

    python benchmarks/sampler_overhead.py [--model mobilenetv4] [--runtime onnxruntime] [--threads 2]
                                          [--rounds 5] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace
from pathlib import Path

from deploybench import registry
from deploybench.cache import ArtifactCache
from deploybench.cell import Cell
from deploybench.exporters.base import ExportOptions
from deploybench.harness import MeasurePolicy
from deploybench.isolation import run_isolated
from deploybench.models import resolve
from deploybench.runtimes.base import RuntimeOptions

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_block import publish

VARIANTS = {"off": (), "rss": ("rss",), "rss-sampled": ("rss-sampled",)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenetv4")
    parser.add_argument("--runtime", default="onnxruntime")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0, help="Timed seconds per run (at least).")
    parser.add_argument("--out", type=Path, help="Also write the Markdown table here.")
    args = parser.parse_args()

    spec = resolve(args.model)
    runtime = registry.runtimes.canonical(args.runtime)
    fmt = registry.runtimes.get(runtime).formats[0]
    artifact, _ = ArtifactCache().get_or_export(registry.exporters.get(fmt)(), spec, ExportOptions())
    policy = MeasurePolicy(min_seconds=args.seconds, max_seconds=args.seconds * 3)
    base = Cell(
        model=spec.ref,
        model_name=spec.name,
        task=spec.task,
        format=fmt,
        runtime=runtime,
        batch=args.batch,
        artifact_dir=str(artifact.path),
        policy=policy,
        runtime_options=RuntimeOptions(threads=args.threads, mode="latency"),
    )
    medians: dict[str, list[float]] = {name: [] for name in VARIANTS}
    order = list(VARIANTS)
    for round_index in range(args.rounds):
        for name in order[round_index % len(order) :] + order[: round_index % len(order)]:  # rotate the order
            row = run_isolated([replace(base, sample=VARIANTS[name])])[0]
            if row.status != "ok":
                raise SystemExit(f"error: {name} run failed: {row.message}")
            medians[name].append(row.stats.median)
            print(f"round {round_index + 1} {name}: {row.stats.median:.3f} ms", file=sys.stderr, flush=True)
    off = statistics.median(medians["off"])
    lines = [
        f"{spec.name}, {runtime}, batch {args.batch}, {args.threads} threads, {args.rounds} rounds in rotating "
        f"order, each a fresh worker timing at least {args.seconds:.0f} s; medians in ms.",
        "",
        "| sampler | median | ratio to off | rounds |",
        "|---|---|---|---|",
    ]
    for name, values in medians.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:.3f} | {median / off:.3f} | {', '.join(f'{v:.3f}' for v in values)} |")
    text = "\n".join(lines)
    publish(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
