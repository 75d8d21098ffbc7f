"""Are the speed regimes a session's? Two sessions of one file, in one process.

Makes two ONNX Runtime sessions of the same ONNX export in one process and times them in
alternating bursts of ``--seconds`` (each a ``session.run`` loop under ``perf_counter``),
``--rounds`` times, the order flipping each round. Where a regime belonged to a session (its
thread pool, its buffers), the two would keep their own speeds; where it is the process's or
the machine's, they step together, and a burst's ratio to its neighbour stays near 1 while
both move (``machine_regimes.py`` shows the steps inside one process and across processes).
The table lists every round; the line above it gives the correlation of the two sessions'
medians and how far the ratio of neighbours strays.

    python benchmarks/regimes_in_one_process.py [--model mobilenetv4] [--rounds 120] [--seconds 0.4]
                                                [--threads 2] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_regimes import onnx_file
from readme_block import publish


def burst(session: Any, feeds: dict[str, Any], seconds: float) -> float:
    """The median ms of ``session.run`` calls over ``seconds`` (at least 10 calls)."""
    samples: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(samples) < 10:
        t0 = time.perf_counter()
        session.run(None, feeds)
        samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenetv4")
    parser.add_argument("--rounds", type=int, default=120)
    parser.add_argument("--seconds", type=float, default=0.4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="Also write the Markdown table here.")
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds must be at least 2 (a correlation needs two)")

    import numpy as np
    import onnxruntime as ort

    path = onnx_file(args.model)

    def session() -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    first, second = session(), session()
    source = first.get_inputs()[0]
    feeds = {source.name: np.random.default_rng(0).standard_normal((1, *source.shape[1:])).astype(np.float32)}
    for each in (first, second):
        burst(each, feeds, 1.0)  # warm-up
    started = time.time()
    pairs = []
    for index in range(args.rounds):  # the order flips each round, so neither session always goes first
        if index % 2 == 0:
            first_ms = burst(first, feeds, args.seconds)
            second_ms = burst(second, feeds, args.seconds)
        else:
            second_ms = burst(second, feeds, args.seconds)
            first_ms = burst(first, feeds, args.seconds)
        pairs.append((first_ms, second_ms))
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    ratios = [y / x for x, y in pairs]
    lines = [
        f"Written by `python benchmarks/regimes_in_one_process.py {' '.join(sys.argv[1:])}` on "
        f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(started))}: {args.model} (ONNX, batch 1, "
        f"{args.threads} threads), two sessions of one file in one process, timed in {args.rounds} rounds of "
        f"alternating bursts of {args.seconds:g} s each after 1 s of warm-up. Session medians range "
        f"{min(a + b):.3f}-{max(a + b):.3f} ms ({max(a + b) / min(a + b):.2f}x); the correlation of the two "
        f"sessions' medians is {statistics.correlation(a, b):.2f}; second / first within a round: median "
        f"{statistics.median(ratios):.3f}, range {min(ratios):.3f}-{max(ratios):.3f}, "
        f"{sum(abs(r - 1) > 0.03 for r in ratios)} of {len(ratios)} rounds outside 0.97-1.03.",
        "",
        "| round | first session ms | second session ms | second / first |",
        "|---|---|---|---|",
    ]
    lines += [f"| {i} | {x:.3f} | {y:.3f} | {y / x:.3f} |" for i, (x, y) in enumerate(pairs, 1)]
    publish("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
