"""Fidelity benchmark: does ``deploybench bench`` report what the runtime's own tool reports?

Through the path users run: ``deploybench bench`` as a command, each cell in its worker
process with the memory sampler on, against

- OpenVINO's ``benchmark_app`` on the same IR with the static shape (``-shape``) and its
  float input (``-ip f32``; by default it feeds an image input as u8 through a Convert), one
  synchronous request at batch 1 (the LATENCY hint's one stream, spelled out) and the
  THROUGHPUT hint with the request count deploybench used at larger batches;
- a bare ONNX Runtime loop (``session.run`` under ``perf_counter``) on the same ONNX file,
  in its own process.

Each (model, batch) runs in alternating rounds (the order flips every round), and each row
reports the ratio deploybench / reference *within* each round, where the two runs are
neighbours in time: its median over the rounds (the row's *ratio*) and that median's interval. Beside it,
each side's median over its rounds and, as a second opinion, the ratio of each side's best
round (lowest median latency, highest throughput). ``--raw FILE.json`` keeps every round's
figures.

Why the within-round median leads: a shared VM runs in speed regimes that last seconds to
tens of seconds (the same loop on the same file takes 2.1, 3.0 or 3.5 ms a call for a while,
then moves; ``benchmarks/machine_regimes.py`` shows it). A round's two runs mostly share a
regime, so its ratio cancels it; the median then ignores the minority of rounds whose runs
straddled a change. The best-round ratio instead needs both sides to reach the fastest regime
at least once, and where that regime is rare (vit_s16 batch 1 on ONNX Runtime: 2 windows of
40 in ``machine-regimes-vit-cpu.md``) it compares one side's lucky round with the other's
ordinary ones. Where the two disagree, read both. With ``--readme`` the table replaces the
text between the fidelity markers (``--block`` names other markers).

How far a row's ratio can be trusted: beside it, the 95 % interval of the median over the
rounds (from the order statistics: it holds whatever the ratios' distribution, for independent
rounds; rounds that share a regime make it optimistic), and the second line under the table
says which ratios this many rounds can place inside or outside the bar and which they cannot.
``--pairs control`` runs the bare loop against itself in rounds of its own, alternating the
same way (an A/A row): deploybench takes no part, so what that ratio strays from 1 is the
machine and the method, not deploybench. ``--from-raw FILE`` writes the table again from a
run's ``--raw`` file, measuring nothing; give it the run's ``--threads`` and ``--seconds``,
which the header names.

    python benchmarks/fidelity.py [--models mobilenetv4,resnet50,vit_s16] [--batches 1,8] [--threads 2]
                                  [--rounds 21] [--seconds 4] [--pairs openvino,onnxruntime,control]
                                  [--out FILE.md] [--raw FILE.json] [--readme README.md] [--block fidelity]
                                  [--from-raw FILE.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import NormalDist

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import bare_ort
from bare_ort import Timing
from readme_block import README, publish

from deploybench.stats import median_interval

BAR = (0.97, 1.03)  # issue 11: every ratio, latency and throughput, within this
CONFIDENCE = 0.95  # of the interval shown beside each ratio
PAIRS = ("openvino", "onnxruntime", "control")
CONTROL_LABEL = "control (a second bare loop)"  # takes deploybench's place in its rounds


@dataclass
class Comparison:
    model: str
    batch: int
    label: str
    reference: list[Timing] = field(default_factory=list)
    deploybench: list[Timing] = field(default_factory=list)  # latency on the reference's clock (see BenchRow)
    deploybench_host_ms: list[float] = field(default_factory=list)  # the row's p50: host wall time of a call
    control: bool = False  # an A/A row: a second bare loop stands where deploybench does

    @staticmethod
    def best(side: list[Timing]) -> Timing:
        """A side's best figures: its lowest median latency and its highest throughput (each from
        the round that had it)."""
        return Timing(min(t.median_ms for t in side), max(t.throughput for t in side))

    @staticmethod
    def typical(side: list[Timing]) -> Timing:
        """A side's median figures over its rounds."""
        return Timing(statistics.median(t.median_ms for t in side), statistics.median(t.throughput for t in side))

    def round_ratios(self) -> tuple[list[float], list[float]]:
        """deploybench / reference per round, latency and throughput: the two runs of a round are
        neighbours in time (the order flips every round), so their ratio cancels the regime they
        shared and slow drift."""
        pairs = list(zip(self.deploybench, self.reference))
        return [ours.median_ms / ref.median_ms for ours, ref in pairs], [
            ours.throughput / ref.throughput for ours, ref in pairs
        ]


# -- deploybench, through its command line -----------------------------------------------


@dataclass(frozen=True)
class BenchRow:
    timing: Timing  # host p50 of a call, and img/s over the window
    own_ms: float | None  # the p50 on the runtime's own clock (OpenVINO's request latency), where it has one
    artifact: Path
    infer_requests: int
    streams: int
    mode: str  # the hint deploybench compiled with: latency or throughput


def deploybench_bench(model: str, runtime: str, batch: int, threads: int, seconds: float) -> BenchRow:
    """``deploybench bench`` in a subprocess (which runs the cell in its own worker)."""
    with tempfile.TemporaryDirectory(prefix="fidelity-") as tmp:
        out = Path(tmp, "results.json")
        command = [
            str(Path(sys.executable).parent / "deploybench"),
            "bench",
            model,
            "--runtime",
            runtime,
            "--batch",
            str(batch),
            "--threads",
            str(threads),
            "--min-seconds",
            str(seconds),
            "--json",
            str(out),
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0 or not out.is_file():
            raise RuntimeError(f"deploybench bench failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        row = json.loads(out.read_text())["rows"][0]
    folder = Path(row["artifact"]["path"])
    main_file = json.loads((folder / "manifest.json").read_text())["main_file"]
    info = row["runtime_info"]
    own = row.get("own_stats")
    return BenchRow(
        Timing(row["stats"]["median"], row["throughput"]),
        own["median"] if own else None,
        folder / main_file,
        int(info.get("infer_requests") or 1),
        int(info.get("streams") or 1),
        str(info.get("mode") or "latency"),
    )


# -- the references --------------------------------------------------------------------


def bare_onnxruntime(path: Path, batch: int, threads: int, seconds: float) -> Timing:
    """The smallest honest loop, in its own process: 2 s of warm-up, then session.run under perf_counter."""
    (window,) = bare_ort.windows(path, batch, threads, 1, seconds)
    return window


def benchmark_app_command() -> list[str]:
    tool = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")
    if Path(tool).is_file():
        return [tool]
    return [
        sys.executable,
        "-c",
        "import sys; from openvino.tools.benchmark.main import main; sys.argv[0] = 'benchmark_app'; main()",
    ]


def benchmark_app_mode(ov: BenchRow, threads: int) -> tuple[list[str], str]:
    """benchmark_app's options for the setting deploybench ran, and its label.

    deploybench compiles with the LATENCY or THROUGHPUT hint and sets the thread count.
    benchmark_app refuses ``-nthreads`` beside a hint, so where the threads are the physical
    cores (what a hint uses anyway) it gets the same hint: LATENCY with one synchronous
    request, or THROUGHPUT with deploybench's request count. A hint sets more than streams
    (thread pinning, which cores), so spelling it out differs measurably. Otherwise the
    streams deploybench's hint chose are spelled out with ``-nthreads``.
    """
    from deploybench.runtimes.base import physical_cores

    if ov.mode == "latency" and threads == physical_cores():
        return ["-hint", "latency", "-nireq", "1", "-api", "sync"], "latency hint, sync, 1 request"
    if ov.mode == "latency":
        return [
            "-hint",
            "none",
            "-nstreams",
            "1",
            "-nireq",
            "1",
            "-api",
            "sync",
            "-nthreads",
            str(threads),
        ], "sync, 1 request"
    if threads == physical_cores():
        return [
            "-hint",
            "throughput",
            "-nireq",
            str(ov.infer_requests),
            "-api",
            "async",
        ], f"throughput hint, {ov.infer_requests} requests"
    return [
        "-hint",
        "none",
        "-nstreams",
        str(ov.streams),
        "-nireq",
        str(ov.infer_requests),
        "-api",
        "async",
        "-nthreads",
        str(threads),
    ], f"{ov.streams} streams, {ov.infer_requests} requests"


def benchmark_app(path: Path, shape: list[int], seconds: float, mode: list[str]) -> Timing:
    """OpenVINO's benchmark_app on the static shape (``-shape``), FP32 compute, FP32 input.

    ``-ip f32``: left alone, benchmark_app takes a 3-channel image input as u8 and compiles
    the model with a Convert in front of it; deploybench, like a deployed pipeline that feeds
    normalised tensors, runs the IR's float input, so the two would time different models.
    """
    command = [
        *benchmark_app_command(),
        "-m",
        str(path),
        "-d",
        "CPU",
        *mode,
        "-infer_precision",
        "f32",
        "-ip",
        "f32",
        "-shape",
        str(shape).replace(" ", ""),
        "-t",
        str(max(1, math.ceil(seconds))),  # whole seconds, never shorter than deploybench's window
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    output = done.stdout
    if done.returncode != 0:
        raise RuntimeError(f"benchmark_app failed: {' '.join(command)}\n{(done.stdout + done.stderr)[-2000:]}")
    # Latencies are printed in us when the average is under 1 ms.
    median = re.search(r"Median:\s+([\d.]+) (ms|us)", output)
    throughput = re.search(r"Throughput:\s+([\d.]+) FPS", output)
    if not (median and throughput):
        raise RuntimeError(f"benchmark_app printed no median or throughput:\n{output[-2000:]}")
    scale = 1e-3 if median.group(2) == "us" else 1.0
    return Timing(float(median.group(1)) * scale, float(throughput.group(1)))


# -- rounds and the table ----------------------------------------------------------------


def on_reference_clock(row: BenchRow) -> tuple[Timing, float]:
    """A deploybench row as compared, and its host p50. Its latency is taken on the reference's
    clock: benchmark_app's median is each request's own latency (``InferRequest.latency``), so
    OpenVINO rows compare the row's figure on that clock; the host p50 is kept beside it."""
    own = row.timing.median_ms if row.own_ms is None else row.own_ms
    return Timing(own, row.timing.throughput), row.timing.median_ms


def alternate(
    rounds: int,
    reference: Callable[[], Timing],
    ours: Callable[[], tuple[Timing, float]],
    comparison: Comparison,
) -> None:
    """``rounds`` rounds, the order flipping each round. ``ours`` gives the figures compared
    with the reference and the host p50 of a call."""

    def run_ours() -> None:
        compared, host_ms = ours()
        comparison.deploybench.append(compared)
        comparison.deploybench_host_ms.append(host_ms)

    for index in range(rounds):
        sides = [lambda: comparison.reference.append(reference()), run_ours]
        for run in sides if index % 2 == 0 else sides[::-1]:
            run()


def openvino_reference(model: str, batch: int, args: argparse.Namespace) -> tuple[Comparison, Callable[[], Timing]]:
    """benchmark_app set as deploybench ran: a first ``deploybench bench`` exports the IR (outside
    every round) and tells the hint and request count it used."""
    from deploybench.models import resolve

    ov = deploybench_bench(model, "openvino", batch, args.threads, args.seconds)
    mode, label = benchmark_app_mode(ov, args.threads)
    shape = [batch, *resolve(model).input.shape]
    return Comparison(model, batch, f"openvino vs benchmark_app ({label})"), lambda: benchmark_app(
        ov.artifact, shape, args.seconds, mode
    )


def compare_model(model: str, batch: int, args: argparse.Namespace) -> list[Comparison]:
    """The pairs ``args.pairs`` names for one (model, batch), each in ``args.rounds`` rounds."""

    def ours(runtime: str) -> Callable[[], tuple[Timing, float]]:
        return lambda: on_reference_clock(deploybench_bench(model, runtime, batch, args.threads, args.seconds))

    onnx_file = Path()
    if {"onnxruntime", "control"} & set(args.pairs):  # the bare loop's file: a first run exports it, before any round
        onnx_file = deploybench_bench(model, "onnxruntime", batch, args.threads, args.seconds).artifact

    def bare() -> Timing:
        return bare_onnxruntime(onnx_file, batch, args.threads, args.seconds)

    def bare_as_ours() -> tuple[Timing, float]:
        timing = bare()
        return timing, timing.median_ms

    pairs: list[tuple[Comparison, Callable[[], Timing], Callable[[], tuple[Timing, float]]]] = []
    for name in args.pairs:
        if name == "openvino":
            comparison, reference = openvino_reference(model, batch, args)
            pairs.append((comparison, reference, ours("openvino")))
        elif name == "onnxruntime":
            pairs.append((Comparison(model, batch, "onnxruntime vs bare session.run loop"), bare, ours("onnxruntime")))
        else:
            control = Comparison(model, batch, f"{CONTROL_LABEL} vs bare session.run loop", control=True)
            pairs.append((control, bare, bare_as_ours))
    for comparison, reference, side in pairs:
        alternate(args.rounds, reference, side, comparison)
        print(
            f"{model} b{batch} {comparison.label}: reference {comparison.reference} / deploybench "
            f"{comparison.deploybench}",
            file=sys.stderr,
            flush=True,
        )
    return [pair[0] for pair in pairs]


def render(comparisons: list[Comparison], args: argparse.Namespace) -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    lines = [
        f"Written by `python benchmarks/fidelity.py {' '.join(sys.argv[1:])}` on {time.strftime('%Y-%m-%d')}, "
        f"{cpu}, {len(os.sched_getaffinity(0))} usable cores, {args.threads} threads, FP32, "
        f"{rounds_run(comparisons)} alternating rounds of at least {args.seconds:g} s per side. ms/image is the median "
        "latency of one call divided by the batch, img/s the images over the timed window; each side's "
        "figure is its median over its rounds. *ratio* is deploybench / reference within each round (the "
        "two runs are neighbours in time, so they mostly share the VM's speed regime): the median over the "
        f"rounds and, in brackets, the {CONFIDENCE:.0%} interval of that median (from the order statistics: "
        "it holds whatever the ratios' distribution, for independent rounds; rounds that share a regime make "
        "it optimistic; n/a under 6 rounds). *best rounds* is the ratio of each side's best round (lowest "
        "ms/image, highest img/s), a second opinion that a rare fast regime reached by one side only can "
        "sway. Latency is compared on the reference's clock: benchmark_app's median is each request's own "
        "latency (`InferRequest.latency`), so where deploybench ran one request at a time the row's figure "
        "on that clock (its `own_stats`) is compared; the bare loop and deploybench's other rows time a call "
        "on the host. *host ms/img* is the row's `p50 ms` over the batch, host wall time of a call, which "
        "on OpenVINO also holds the Python call around the request."
        + (
            f" The *{CONTROL_LABEL}* rows put a second bare loop where deploybench stands, in rounds of "
            "their own: their ratios and intervals are what the machine and the method alone give."
            if any(c.control for c in comparisons)
            else ""
        ),
        "",
        "| model | batch | runtime vs reference | reference ms/img | deploybench ms/img | host ms/img | ratio | "
        "best rounds | reference img/s | deploybench img/s | ratio | best rounds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        ref, ours = c.typical(c.reference), c.typical(c.deploybench)
        ref_best, ours_best = c.best(c.reference), c.best(c.deploybench)
        latency, throughput = c.round_ratios()
        host_ms = statistics.median(c.deploybench_host_ms) / c.batch
        lines.append(
            f"| {c.model} | {c.batch} | {c.label} | {ref.median_ms / c.batch:.3f} | {ours.median_ms / c.batch:.3f} | "
            f"{host_ms:.3f} | {summary(latency)} | {ours_best.median_ms / ref_best.median_ms:.3f} | "
            f"{ref.throughput:.1f} | {ours.throughput:.1f} | {summary(throughput)} | "
            f"{ours_best.throughput / ref_best.throughput:.3f} |"
        )
    lines += ["", verdict(comparisons)]
    return "\n".join(lines)


def verdict(comparisons: list[Comparison]) -> str:
    """The lines under the table: for deploybench's rows, then apart for any A/A control rows
    (they measure the method, not deploybench), how many ratios are inside the bar and what the
    rounds can tell of each (``bar_line``, ``interval_line``)."""
    groups = [
        ([c for c in comparisons if not c.control], "ratios"),
        ([c for c in comparisons if c.control], "control ratios (the bare loop against itself)"),
    ]
    return "\n\n".join(
        line for group, noun in groups if group for line in (bar_line(group, noun), interval_line(group))
    )


def named_ratios(comparisons: list[Comparison]) -> list[tuple[str, list[float]]]:
    """Each row's two ratios, latency and throughput, as (name, within-round ratios)."""
    return [
        (f"{c.model} batch {c.batch} {c.label.split(' vs ')[0]} {unit}", side)
        for c in comparisons
        for unit, side in zip(("ms/img", "img/s"), c.round_ratios())
    ]


def bar_line(comparisons: list[Comparison], noun: str) -> str:
    """How many row ratios (each row's median within-round ratio) are inside the bar, and which
    are not, judged on the unrounded ratio (so one printed as 0.970 can be outside; those are
    named with four decimals)."""
    low, high = BAR
    ratios = named_ratios(comparisons)
    medians = [(name, statistics.median(side)) for name, side in ratios]
    outside = [f"{name} {ratio:.4f}" for name, ratio in medians if not low <= ratio <= high]
    head = f"**{len(ratios) - len(outside)} of {len(ratios)} {noun} within {low:.2f}-{high:.2f}**"
    return f"{head}; outside: {'; '.join(outside)}." if outside else f"{head}."


def interval_line(comparisons: list[Comparison]) -> str:
    """What the rounds can tell: a ratio whose interval lies inside the bar is inside it however
    the noise fell, one wholly outside is outside; one whose interval crosses an edge could be on
    either side, and more rounds (or a quieter machine) would be needed to say which."""
    placed: dict[str, list[str]] = {"inside": [], "outside": [], "either side": [], "too few rounds": []}
    ratios = named_ratios(comparisons)
    for name, side in ratios:
        interval = order_statistic_interval(side)
        if interval is None:
            placed["too few rounds"].append(name)
        else:
            placed[placement(interval)].append(f"{name} {interval[0]:.4f}-{interval[1]:.4f}")
    rounds = rounds_run(comparisons)
    parts = [f"inside the bar for {len(placed['inside'])}"]
    for where, text in (("outside", "wholly outside it"), ("either side", "across an edge of it")):
        names = placed[where]
        parts.append(f"{text} for {len(names)}" + (f" ({'; '.join(names)})" if names else ""))
    if placed["too few rounds"]:
        parts.append(f"not placed for {len(placed['too few rounds'])} (too few rounds for an interval)")
    return f"At {rounds} rounds, the {CONFIDENCE:.0%} interval of the median ratio lies {', '.join(parts)}."


def rounds_run(comparisons: list[Comparison]) -> str:
    """How many rounds the rows ran: ``21``, or ``11-21`` where rows differ."""
    counts = sorted({len(c.reference) for c in comparisons}) or [0]
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def order_statistic_interval(ratios: list[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The interval of the median of the rounds' ratios at ``confidence``: the order statistics of
    ``deploybench.stats.median_interval``, which the harness's stop rule uses too. None where no
    interval holds that much: even the whole range misses the median with probability 2 / 2**n
    (fewer than 6 rounds at 95 %)."""
    n = len(ratios)
    if n == 0 or 2 / 2**n > 1 - confidence:
        return None
    return median_interval(sorted(ratios), z=NormalDist().inv_cdf((1 + confidence) / 2))


def placement(interval: tuple[float, float]) -> str:
    """Where an interval lies against the bar: inside, outside, or on either side of an edge."""
    low, high = BAR
    if low <= interval[0] and interval[1] <= high:
        return "inside"
    if interval[1] < low or interval[0] > high:
        return "outside"
    return "either side"


def summary(ratios: list[float]) -> str:
    """The median ratio and, in brackets, the interval of that median: ``1.004 (0.991-1.012)``."""
    interval = order_statistic_interval(ratios)
    shown = "n/a" if interval is None else f"{interval[0]:.3f}-{interval[1]:.3f}"
    return f"{statistics.median(ratios):.3f} ({shown})"


def load_raw(path: Path) -> list[Comparison]:
    """The comparisons a run kept with ``--raw``."""
    comparisons = []
    for row in json.loads(path.read_text()):
        sides = {side: [Timing(**t) for t in row[side]] for side in ("reference", "deploybench")}
        comparisons.append(Comparison(**{**row, **sides}))
    return comparisons


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mobilenetv4,resnet50,vit_s16")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--out", type=Path, help="Also write the Markdown table here.")
    parser.add_argument("--raw", type=Path, help="Also write every round's figures here, as JSON.")
    parser.add_argument(
        "--pairs",
        default="openvino,onnxruntime",
        help=f"Which comparisons, of {', '.join(PAIRS)} (control: the bare loop against itself).",
    )
    parser.add_argument("--readme", type=Path, help="Put the table between the fidelity markers of this file.")
    parser.add_argument("--block", default="fidelity", help="The README markers' name (with --readme).")
    parser.add_argument(
        "--from-raw",
        type=Path,
        help="Measure nothing: write the table from the rounds a run kept (its --raw file), with the same options.",
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    args.pairs = list(dict.fromkeys(name.strip() for name in args.pairs.split(",")))
    unknown = sorted(set(args.pairs) - set(PAIRS))
    if unknown:
        parser.error(f"unknown pair {', '.join(unknown)}; choose from {', '.join(PAIRS)}")

    if args.from_raw is not None:
        comparisons = load_raw(args.from_raw)
    else:
        comparisons = [
            c
            for model in args.models.split(",")
            for batch in (int(b) for b in args.batches.split(","))
            for c in compare_model(model, batch, args)
        ]
    if args.raw is not None:
        args.raw.parent.mkdir(parents=True, exist_ok=True)
        args.raw.write_text(json.dumps([asdict(c) for c in comparisons], indent=1) + "\n")
    text = render(comparisons, args)
    publish(text, args.out, args.block if args.readme else None, args.readme or README)
    return 0


if __name__ == "__main__":
    sys.exit(main())
