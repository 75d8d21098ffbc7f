"""Cross-check a TensorRT row against ``trtexec --loadEngine``, the tool TensorRT users trust.

trtexec ends its run with a performance summary (TensorRT's documentation, "trtexec" and
"Performance Benchmarking")::

    [I] === Performance summary ===
    [I] Throughput: 4237.53 qps
    [I] Latency: min = 0.226 ms, max = 0.526 ms, mean = 0.232 ms, median = 0.230 ms, percentile(90%) = ...
    [I] Enqueue Time: min = ...
    [I] H2D Latency: min = ...
    [I] GPU Compute Time: min = ..., median = ..., percentile(99%) = ...
    [I] D2H Latency: min = ...
    [I] Total Host Walltime: 3.00062 s
    [I] Total GPU Compute Time: 2.94375 s

deploybench times ``execute_async_v3`` + a stream synchronize on device-resident buffers, so
trtexec runs with ``--noDataTransfers`` (no H2D/D2H copies) on the same engine and shape, and
the row gets the ratio of the two medians: 1.00 means deploybench agrees with trtexec.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TIMEOUT_S = 300
# The summary's lines; the negative lookbehind keeps "Latency" from matching "H2D Latency".
_SECTION = re.compile(
    r"(?<![\w-])(Latency|Enqueue Time|H2D Latency|GPU Compute Time|D2H Latency|"
    r"End-to-End Host Latency): (min = .*)$",
    re.M,
)
_STAT = re.compile(r"(min|max|mean|median|percentile\(\d+(?:\.\d+)?%\)) = ([0-9.eE+-]+) ms")
_THROUGHPUT = re.compile(r"Throughput: ([0-9.eE+-]+) qps")


@dataclass(frozen=True)
class TrtexecSummary:
    """trtexec's performance summary: statistics in ms by section, throughput in queries per second."""

    throughput_qps: float | None
    sections: dict[str, dict[str, float]] = field(default_factory=dict)

    def median(self, section: str) -> float | None:
        return self.sections.get(section, {}).get("median")


def parse_summary(text: str) -> TrtexecSummary | None:
    """The performance summary in trtexec's output, or None when it printed none (it failed)."""
    sections = {
        name: {key: float(value) for key, value in _STAT.findall(stats)} for name, stats in _SECTION.findall(text)
    }
    throughput = _THROUGHPUT.search(text)
    if not sections:
        return None
    return TrtexecSummary(throughput_qps=float(throughput.group(1)) if throughput else None, sections=sections)


def command(trtexec: str, engine: Path, input_name: str, shape: tuple[int, ...]) -> list[str]:
    """``trtexec --loadEngine`` at the row's shape, without host transfers, as deploybench times it."""
    return [
        trtexec,
        f"--loadEngine={engine}",
        f"--shapes={input_name}:{'x'.join(str(d) for d in shape)}",
        "--noDataTransfers",
        "--warmUp=1000",
        "--duration=3",
        "--iterations=10",
    ]


@dataclass(frozen=True)
class CrossCheck:
    """deploybench's medians beside trtexec's, for the same engine and shape."""

    tool: str
    command: str
    trtexec_latency_median_ms: float | None = None
    trtexec_gpu_compute_median_ms: float | None = None
    trtexec_throughput_qps: float | None = None
    ratio_of_medians: float | None = None  # deploybench p50 / trtexec latency median
    ratio_of_gpu_medians: float | None = None  # deploybench CUDA-event median / trtexec GPU compute median
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def compare(summary: TrtexecSummary, cmd: str, median_ms: float, device_median_ms: float | None) -> CrossCheck:
    """The ratios of deploybench's medians to trtexec's."""
    latency, compute = summary.median("Latency"), summary.median("GPU Compute Time")
    return CrossCheck(
        tool="trtexec",
        command=cmd,
        trtexec_latency_median_ms=latency,
        trtexec_gpu_compute_median_ms=compute,
        trtexec_throughput_qps=summary.throughput_qps,
        ratio_of_medians=round(median_ms / latency, 4) if latency else None,
        ratio_of_gpu_medians=round(device_median_ms / compute, 4) if compute and device_median_ms else None,
    )


def cross_check(
    engine: Path,
    input_name: str,
    shape: tuple[int, ...],
    median_ms: float,
    device_median_ms: float | None,
    trtexec: str | None = None,
) -> CrossCheck | None:
    """Run trtexec on ``engine`` when it is on PATH; None where it is not. Failures are recorded, never raised."""
    binary = trtexec or shutil.which("trtexec")
    if binary is None:
        return None
    cmd = command(binary, engine, input_name, shape)
    text = " ".join(cmd)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return CrossCheck(tool="trtexec", command=text, error=f"{type(exc).__name__}: {exc}")
    summary = parse_summary(done.stdout + done.stderr)
    if done.returncode != 0 or summary is None:
        tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["no output"]
        return CrossCheck(tool="trtexec", command=text, error=f"exit {done.returncode}: {tail[0]}")
    return compare(summary, text, median_ms, device_median_ms)
