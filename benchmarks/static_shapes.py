"""Static vs dynamic batch, per runtime: which artifacts deploybench builds for the timed batch.

For each runtime that can run either, the same model at the same batch runs as the dynamic
artifact and as the static one, in alternating rounds through deploybench's harness:

- onnxruntime: the dynamic graph vs the same graph with its batch fixed at session creation
  (``add_free_dimension_override_by_name``);
- openvino: the dynamic IR vs the IR reshaped to the batch before compiling;
- aoti: the dynamic-batch package vs a package compiled for the batch.

    python benchmarks/static_shapes.py [--models mobilenetv4,resnet18] [--batches 1,8] [--rounds 3] [--out FILE.md]

The decision it supports is recorded in the exporters (``static_per_batch``) and runtimes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deploybench import registry
from deploybench.artifact import BatchRange
from deploybench.cache import ArtifactCache
from deploybench.exporters.base import ExportOptions
from deploybench.harness import MeasurePolicy, measure
from deploybench.inputs import example_batch
from deploybench.models import resolve
from deploybench.runtimes.base import RuntimeOptions
from deploybench.runtimes.onnxruntime import OnnxRuntime

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_block import publish

POLICY = MeasurePolicy(min_seconds=3.0, max_seconds=10.0)


class FixedBatchOnnxRuntime(OnnxRuntime):
    """ONNX Runtime with the graph's batch dimension fixed when the session is created."""

    # Runs as "onnxruntime" (load checks that runtime's requirements); only the session options differ.
    batch = 1

    def _session_options(self, ort: Any, artifact: Any) -> Any:
        import onnx

        options = super()._session_options(ort, artifact)
        dim = onnx.load(str(artifact.file), load_external_data=False).graph.input[0].type.tensor_type.shape.dim[0]
        options.add_free_dimension_override_by_name(dim.dim_param, self.batch)
        return options


def median_ms(runtime_cls: type, options: RuntimeOptions, artifact: Any, batch: int, spec: Any) -> float:
    with runtime_cls(options).load(artifact) as runtime:
        return measure(runtime, runtime.prepare(example_batch(spec.input, batch)), batch, POLICY).stats.median


Pair = tuple[Callable[[], float], Callable[[], float]]


def variant(runtime: str, spec: Any, batch: int, threads: int, cache: ArtifactCache) -> Pair:
    """(dynamic, static) measurement functions for one runtime; exports go through the cache."""
    dynamic_range, static_range = BatchRange(1, 1, 64), BatchRange(batch, batch, batch)
    base = RuntimeOptions(threads=threads, mode="latency")

    def export(fmt: str, batch_range: BatchRange) -> Any:
        options = ExportOptions(batch=batch_range, threads=threads)
        return cache.get_or_export(registry.exporters.get(fmt)(), spec, options)[0]

    if runtime == "onnxruntime":
        onnx = export("onnx", dynamic_range)
        fixed = type("Fixed", (FixedBatchOnnxRuntime,), {"batch": batch})
        ort = registry.runtimes.get("onnxruntime")
        return (lambda: median_ms(ort, base, onnx, batch, spec), lambda: median_ms(fixed, base, onnx, batch, spec))
    if runtime == "openvino":
        ir, ov = export("openvino", dynamic_range), registry.runtimes.get("openvino")
        dynamic = RuntimeOptions(threads=threads, mode="latency", dynamic_batch=True)
        return (lambda: median_ms(ov, dynamic, ir, batch, spec), lambda: median_ms(ov, base, ir, batch, spec))
    if runtime == "aoti":
        packages, aoti = (export("aoti", dynamic_range), export("aoti", static_range)), registry.runtimes.get("aoti")
        return (
            lambda: median_ms(aoti, base, packages[0], batch, spec),
            lambda: median_ms(aoti, base, packages[1], batch, spec),
        )
    raise SystemExit(f"error: no static/dynamic pair for {runtime!r}; choose from onnxruntime, openvino, aoti")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mobilenetv4,resnet18")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runtimes", default="onnxruntime,openvino,aoti")
    parser.add_argument("--out", type=Path, help="Also write the Markdown table here.")
    args = parser.parse_args()

    cache = ArtifactCache()
    lines = [
        f"{args.threads} threads, FP32, latency mode, {args.rounds} alternating rounds; medians of the "
        "per-round medians in ms; ratio < 1 means static is faster.",
        "",
        "| model | batch | runtime | dynamic | static | static / dynamic |",
        "|---|---|---|---|---|---|",
    ]
    for model in args.models.split(","):
        spec = resolve(model)
        for batch in (int(b) for b in args.batches.split(",")):
            for runtime in args.runtimes.split(","):
                dynamic, static = variant(runtime, spec, batch, args.threads, cache)
                rounds: dict[str, list[float]] = {"dynamic": [], "static": []}
                for _ in range(args.rounds):  # alternate, so drift on a shared machine hits both
                    rounds["dynamic"].append(dynamic())
                    rounds["static"].append(static())
                d, s = statistics.median(rounds["dynamic"]), statistics.median(rounds["static"])
                lines.append(f"| {spec.name} | {batch} | {runtime} | {d:.3f} | {s:.3f} | {s / d:.3f} |")
                print(lines[-1], flush=True)
    text = "\n".join(lines)
    publish(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
