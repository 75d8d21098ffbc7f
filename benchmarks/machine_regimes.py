"""Machine regimes: how steady is one bare loop on this machine, within a process and across processes?

Runs the smallest honest ONNX Runtime loop (``session.run`` under ``perf_counter``, 2 s of
warm-up) on mobilenetv4's ONNX export, in ``--processes`` fresh processes one after
another, each timing ``--windows`` back-to-back windows of ``--seconds``; prints each
window's median ms per call, one line per process. Nothing of deploybench is in the timed
loop: what moves here is the machine. On a shared VM the medians move in steps (regimes)
that last seconds to tens of seconds, inside a process as much as across processes; this is
why ``benchmarks/fidelity.py`` compares each side's best rounds.

    python benchmarks/machine_regimes.py [--model mobilenetv4] [--processes 8] [--windows 5] [--seconds 1]
                                         [--threads 2] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_block import publish

LOOP = r"""
import json, sys, time, statistics
import numpy as np, onnxruntime as ort
path, threads, windows, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
options = ort.SessionOptions()
options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
first = session.get_inputs()[0]
feeds = {first.name: np.random.default_rng(0).standard_normal((1, *first.shape[1:])).astype(np.float32)}
end = time.perf_counter() + 2.0
while time.perf_counter() < end:
    session.run(None, feeds)
medians = []
for _ in range(windows):
    samples, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or not samples:
        t0 = time.perf_counter()
        session.run(None, feeds)
        samples.append((time.perf_counter() - t0) * 1e3)
    medians.append(statistics.median(samples))
print(json.dumps(medians))
"""


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
        command = [sys.executable, "-c", LOOP, str(path), str(args.threads), str(args.windows), str(args.seconds)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"error: the loop failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
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
