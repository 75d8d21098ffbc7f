"""Machine regimes: how steady is one bare loop on this machine, within a process and across processes?

Runs the smallest honest ONNX Runtime loop (``session.run`` under ``perf_counter``, 2 s of
warm-up) on mobilenetv4's ONNX export, in ``--processes`` fresh processes one after
another, each timing ``--windows`` back-to-back windows of ``--seconds``; prints each
window's median ms per call, one line per process. Nothing of deploybench is in the timed
loop: what moves here is the machine. On a shared VM the medians move in steps (regimes)
that last seconds to tens of seconds, inside a process too; this is why
``benchmarks/fidelity.py`` takes its ratio within each round, where the two runs are neighbours.

    python benchmarks/machine_regimes.py [--model mobilenetv4] [--processes 8] [--windows 5] [--seconds 1]
                                         [--threads 2] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bare_ort
from readme_block import publish


def onnx_file(model: str) -> Path:
    from deploybench.api import export

    (exported,) = export(model, "onnx", progress=lambda message: None)
    return exported.artifact.file


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenetv4")
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="Also write the Markdown table here.")
    args = parser.parse_args()

    path = onnx_file(args.model)
    started = time.time()
    runs = []
    for _ in range(args.processes):
        runs.append(
            [window.median_ms for window in bare_ort.windows(path, 1, args.threads, args.windows, args.seconds)]
        )
    every = [m for run in runs for m in run]
    lines = [
        f"Written by `python benchmarks/machine_regimes.py {' '.join(sys.argv[1:])}` on "
        f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(started))}: {args.model} (ONNX, batch 1, "
        f"{args.threads} threads), {args.processes} processes one after another, each timing {args.windows} "
        f"back-to-back windows of {args.seconds:g} s after 2 s of warm-up. Each cell is a window's median ms "
        f"per call. Over all windows: fastest {min(every):.3f}, median {statistics.median(every):.3f}, "
        f"slowest {max(every):.3f} ms ({max(every) / min(every):.2f}x).",
        "",
        "| process | " + " | ".join(f"window {i + 1}" for i in range(args.windows)) + " | spread in the process |",
        "|---|" + "---|" * (args.windows + 1),
    ]
    for index, run in enumerate(runs, 1):
        cells = " | ".join(f"{m:.3f}" for m in run)
        lines.append(f"| {index} | {cells} | {max(run) / min(run):.2f}x |")
    publish("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
