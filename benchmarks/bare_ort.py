"""The smallest honest ONNX Runtime loop, for the benchmarks that compare against one.

``windows(path, batch, threads, count, seconds)`` runs it in a fresh process: a session with
``threads`` intra-op threads (one inter-op), 2 s of warm-up on N(0, 1) inputs, then ``count``
back-to-back windows of at least ``seconds`` and 10 calls each, every call ``session.run``
under ``perf_counter``. Per window: the median ms per call and images per second.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

LOOP = r"""
import json, sys, time, statistics
import numpy as np, onnxruntime as ort
path, seconds = sys.argv[1], float(sys.argv[5])
batch, threads, count = (int(arg) for arg in sys.argv[2:5])
options = ort.SessionOptions()
options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
first = session.get_inputs()[0]
feeds = {first.name: np.random.default_rng(0).standard_normal((batch, *first.shape[1:])).astype(np.float32)}
end = time.perf_counter() + 2.0
while time.perf_counter() < end:
    session.run(None, feeds)
windows = []
for _ in range(count):
    samples, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(samples) < 10:
        t0 = time.perf_counter()
        session.run(None, feeds)
        samples.append((time.perf_counter() - t0) * 1e3)
    wall = time.perf_counter() - start
    windows.append({"median_ms": statistics.median(samples), "throughput": batch * len(samples) / wall})
print(json.dumps(windows))
"""


@dataclass(frozen=True)
class Timing:
    """One timed window (or run): median latency of one call on ``batch`` images, and images per second."""

    median_ms: float
    throughput: float


def windows(path: Path, batch: int, threads: int, count: int, seconds: float) -> list[Timing]:
    done = subprocess.run(
        [sys.executable, "-c", LOOP, str(path), str(batch), str(threads), str(count), str(seconds)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the bare ONNX Runtime loop failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return [Timing(**window) for window in json.loads(done.stdout.strip().splitlines()[-1])]
