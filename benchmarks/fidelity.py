"""Fidelity benchmark: does deploybench report what the runtime's own tool (or a bare loop) reports?

For ONNX Runtime and OpenVINO on the CPU, the same artifact runs with the same threads and
setting through (a) the runtime's own benchmark tool or a minimal hand-written loop and
(b) deploybench's harness, alternating several rounds; medians and their ratio are printed.
It also measures the harness's own per-iteration overhead with a runtime that does nothing.

    python benchmarks/fidelity.py [--model mobilenetv4] [--threads 2] [--rounds 3] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from deploybench import registry
from deploybench.cache import ArtifactCache
from deploybench.exporters.base import ExportOptions
from deploybench.harness import MeasurePolicy, measure
from deploybench.models import example_batch, resolve
from deploybench.runtimes.base import Runtime, RuntimeOptions

POLICY = MeasurePolicy(warmup_iters=20, warmup_seconds=1.0, min_iters=200, min_seconds=5.0)


def bare_onnxruntime_median(path: Path, batch: np.ndarray, threads: int, seconds: float) -> float:
    """The smallest honest loop: one session.run per sample, perf_counter around it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = {session.get_inputs()[0].name: batch}
    for _ in range(20):
        session.run(None, feeds)
    samples, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(samples) < 200:
        t0 = time.perf_counter()
        session.run(None, feeds)
        samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


def benchmark_app_median(path: Path, shape: tuple[int, ...], threads: int, seconds: float) -> float:
    """OpenVINO's own benchmark_app: one stream, one synchronous request, FP32 compute.

    benchmark_app refuses -nthreads together with a hint, so the LATENCY hint deploybench
    uses is spelled out as what it resolves to on a CPU: one stream, the given threads.
    """
    tool = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")
    command = [tool, "-m", str(path), "-d", "CPU", "-hint", "none", "-nstreams", "1", "-nthreads", str(threads),
               "-nireq", "1", "-api", "sync", "-infer_precision", "f32",
               "-shape", str(list(shape)).replace(" ", ""), "-t", str(int(seconds))]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = re.search(r"Median:\s+([\d.]+) ms", output)
    if not match:
        raise RuntimeError(f"benchmark_app printed no median:\n{output[-2000:]}")
    return float(match.group(1))


def deploybench_median(runtime_name: str, artifact, batch: np.ndarray, options: RuntimeOptions) -> float:
    with registry.runtimes.get(runtime_name)(options).load(artifact) as runtime:
        return measure(runtime, runtime.prepare(batch), len(batch), POLICY).stats.median


class NullRuntime(Runtime):
    """Does nothing: what the harness measures is its own cost per iteration."""

    name, formats = "null", ("pytorch",)

    def _load(self, artifact) -> None: ...
    def prepare(self, batch): return batch
    def infer(self, feeds) -> None: ...
    def outputs(self): return []


def harness_overhead_us() -> tuple[float, float]:
    """Median per-iteration time of the harness around a no-op, and of a bare perf_counter pair."""
    runtime = NullRuntime()
    m = measure(runtime, None, 1, MeasurePolicy(warmup_iters=100, warmup_seconds=0, min_iters=100_000, min_seconds=1))
    pairs = []
    for _ in range(100_000):
        t0 = time.perf_counter_ns()
        pairs.append(time.perf_counter_ns() - t0)
    return m.stats.median * 1e3, statistics.median(pairs) / 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenetv4")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--out", type=Path, help="Also write the Markdown table here.")
    args = parser.parse_args()

    spec = resolve(args.model)
    cache = ArtifactCache()
    onnx_artifact, _ = cache.get_or_export(registry.exporters.get("onnx")(), spec, ExportOptions())
    ov_artifact, _ = cache.get_or_export(registry.exporters.get("openvino")(), spec, ExportOptions())
    batch = example_batch(spec.input, 1)
    options = RuntimeOptions(threads=args.threads, precision="fp32", mode="latency")

    rows = []
    for label, own, ours in (
        ("onnxruntime (bare session.run loop)",
         lambda: bare_onnxruntime_median(onnx_artifact.file, batch, args.threads, args.seconds),
         lambda: deploybench_median("onnxruntime", onnx_artifact, batch, options)),
        ("openvino (benchmark_app, 1 stream, sync)",
         lambda: benchmark_app_median(ov_artifact.file, batch.shape, args.threads, args.seconds),
         lambda: deploybench_median("openvino", ov_artifact, batch, options)),
    ):
        theirs_runs, ours_runs = [], []
        for _ in range(args.rounds):  # alternate, so drift on a shared machine hits both sides
            theirs_runs.append(own())
            ours_runs.append(ours())
        theirs, mine = statistics.median(theirs_runs), statistics.median(ours_runs)
        rows.append((label, theirs, mine, mine / theirs, theirs_runs, ours_runs))

    overhead_us, clock_us = harness_overhead_us()
    lines = [f"Model {spec.name}, batch 1, {args.threads} threads, FP32, {args.rounds} alternating rounds of "
             f"at least {args.seconds:.0f} s each; medians in ms.", "",
             "| runtime (reference tool) | reference median | deploybench median | ratio | rounds (ref / deploybench) |",
             "|---|---|---|---|---|"]
    for label, theirs, mine, ratio, t_runs, o_runs in rows:
        lines.append(f"| {label} | {theirs:.3f} | {mine:.3f} | {ratio:.3f} | "
                     f"{', '.join(f'{v:.3f}' for v in t_runs)} / {', '.join(f'{v:.3f}' for v in o_runs)} |")
    lines += ["", f"Harness overhead per timed iteration (no-op runtime): {overhead_us:.2f} us "
                  f"(a bare perf_counter_ns pair: {clock_us:.2f} us)."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
