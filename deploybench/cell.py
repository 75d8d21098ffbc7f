"""One cell: load an artifact in a runtime, time it at one batch size, check its parity.

``run_cell`` does the work in the current process; ``deploybench.isolation`` runs it in a
fresh worker process so memory figures are clean and a crash only ends its own row.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deploybench import batch as batches
from deploybench import registry
from deploybench.artifact import Artifact
from deploybench.batch import Batch
from deploybench.errors import DeployBenchError, UnsupportedError, first_line
from deploybench.harness import Measurement, MeasurePolicy, measure
from deploybench.memory import MemorySampler
from deploybench.models import ModelRef
from deploybench.nvml import NvmlSampler
from deploybench.parity import Parity
from deploybench.results import ArtifactRecord, CellKey, Row, Status
from deploybench.runtimes.base import RuntimeOptions
from deploybench.tegrastats import TegrastatsSampler


@dataclass(frozen=True)
class Cell:
    """Plain data, so it crosses into a worker process as JSON."""

    model: ModelRef
    model_name: str
    task: str
    format: str
    runtime: str
    batch: int
    device: str = "cpu"
    precision: str = "fp32"
    artifact_dir: str | None = None  # None: the in-memory PyTorch module
    reference: str | None = None  # .npz with parity inputs and reference outputs
    runtime_options: RuntimeOptions = field(default_factory=RuntimeOptions)
    policy: MeasurePolicy = field(default_factory=MeasurePolicy)
    tolerance: dict[str, float] = field(default_factory=dict)
    plugin_modules: tuple[str, ...] = ()
    sample: tuple[str, ...] = ("rss",)  # what to record during the window: rss (or rss-sampled), tegrastats

    @property
    def key(self) -> CellKey:
        return CellKey(self.model_name, self.format, self.runtime, self.device, self.precision, self.batch)

    def empty_row(self) -> Row:
        key = self.key
        return Row(key.model, key.format, key.runtime, key.device, key.precision, key.batch)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cell:
        data = dict(data)
        data["model"] = ModelRef(**data["model"])
        data["runtime_options"] = RuntimeOptions(**data["runtime_options"])
        data["policy"] = MeasurePolicy(**data["policy"])
        data["plugin_modules"] = tuple(data.get("plugin_modules", ()))
        data["sample"] = tuple(data.get("sample", ()))
        return cls(**data)


def is_out_of_memory(exc: BaseException) -> bool:
    text = str(exc).lower()
    return (
        isinstance(exc, MemoryError) or "out of memory" in text or "failed to allocate" in text or "bad_alloc" in text
    )


# One worker measures one artifact at several batch sizes: the model is built once per process.
_built: dict[ModelRef, Any] = {}


def _model(ref: ModelRef) -> Any:
    from deploybench.models import resolve

    if ref not in _built:
        _built.clear()  # one model at a time: a worker never needs the one before
        _built[ref] = resolve(ref)
    return _built[ref]


def _load_artifact(cell: Cell) -> Artifact:
    if cell.artifact_dir is not None:
        artifact = Artifact.load(Path(cell.artifact_dir))
        if cell.batch not in artifact.batch:  # e.g. an ONNX file whose batch axis is a number
            raise UnsupportedError(
                f"{artifact.main_file} accepts batch {artifact.batch.min} to {artifact.batch.max}, "
                f"not {cell.batch}; pass --batch {artifact.batch.opt}"
            )
        return artifact
    return Artifact.from_module(_model(cell.model), precision=cell.precision, device=cell.device)


def run_in_chunks(runtime: Any, inputs: Batch, batch: int) -> list[np.ndarray]:
    """Run ``inputs`` through ``runtime`` ``batch`` at a time (the last chunk padded)."""
    chunks: list[list[np.ndarray]] = []
    for start in range(0, batches.size(inputs), batch):
        part = batches.take(inputs, slice(start, start + batch))
        outputs = runtime.run(batches.tile(part, batch))
        chunks.append([o[: batches.size(part)] for o in outputs])
    return [np.concatenate(parts) for parts in zip(*chunks)]


def check_parity(
    runtime: Any,
    reference: Any,
    cell: Cell,
    known_accuracy: dict[str, Any] | None = None,
    candidate: list[np.ndarray] | None = None,
) -> Parity:
    """The runtime's outputs on the reference inputs, judged at the precision it really used;
    with a dataset, its accuracy (``known_accuracy`` when an earlier batch measured it).

    ``candidate``: those outputs when the caller already has them (``window_candidate``);
    otherwise the inputs are run here, ``cell.batch`` at a time."""
    from deploybench.parity import compare, dataset_accuracy

    if candidate is None:
        candidate = run_in_chunks(runtime, batches.load_arrays(reference, "inputs"), cell.batch)
    expected = [reference[f"output{i}"] for i in range(int(reference["n_outputs"]))]
    used = str(runtime.info.get("precision_used") or cell.precision)
    origin = str(reference["inputs_origin"]) if "inputs_origin" in reference.files else ""
    parity = compare(expected, candidate, cell.task, used, cell.tolerance, inputs=origin)
    if known_accuracy is not None:
        parity.accuracy = dict(known_accuracy)
    elif "dataset_inputs" in reference.files:
        scores = run_in_chunks(runtime, reference["dataset_inputs"], cell.batch)[0]
        parity.accuracy = dataset_accuracy(scores, reference["dataset_labels"], reference["dataset_reference"])
    return parity


def window_candidate(runtime: Any, result: Measurement, parity_images: int) -> list[np.ndarray] | None:
    """The parity candidate as the timed window left it, or None where it must be run again.

    The timed batch is tiled from the parity images, so at a batch that holds them all, the
    window's last call already ran on exactly what ``run_in_chunks`` would run, through the
    same prepared buffers: its outputs, on the first ``parity_images`` rows, are the
    candidate, and parity costs no extra call (a yolov8n batch-8 call takes 0.3-0.8 s on 2
    cores). Not with requests in flight: the runtime's outputs then belong to a request other
    than the timed ones (OpenVINO's synchronous request ran the first call only).
    """
    if result.batch < parity_images or result.requests_in_flight != 1:
        return None
    runtime.synchronize()  # as ``Runtime.run`` does; the harness already waited after each call
    return [output[:parity_images] for output in runtime.outputs()]


def memory_window(sample: tuple[str, ...], gpu: bool = False) -> Any:
    """The memory sampler a cell's ``sample`` asks for: ``rss`` (the kernel's high-water mark),
    ``rss-sampled`` (a thread sampling RSS every 10 ms, to compare with), or none at all; with
    device memory where the cell runs on a GPU."""
    if "rss-sampled" in sample:
        return MemorySampler(interval_s=0.01, rss="sampled", gpu=gpu)
    if "rss" in sample:
        return MemorySampler(gpu=gpu)
    return contextlib.nullcontext()


def _inputs(cell: Cell, reference: Any) -> Batch:
    """The inputs the timed batch is tiled from: the parity inputs, or seeded ones."""
    if reference is not None:
        return batches.load_arrays(reference, "inputs")
    from deploybench.inputs import seeded_inputs

    return seeded_inputs(_model(cell.model), cell.batch)


Phase = Callable[[str], None]


def run_cell(cell: Cell, on_phase: Phase = lambda phase: None, known_accuracy: dict[str, Any] | None = None) -> Row:
    """Measure one cell in this process. Failures become the row's status, never an exception.

    The memory window holds the inference alone: loading, preparing the timed batch and the
    timed loop. Parity, with its inputs, outputs and dataset, runs after the window closes,
    on the runtime that is still loaded. ``known_accuracy`` is this artifact's ``--dataset``
    accuracy from an earlier batch (a thousand images; the parity images are checked at every
    batch, since a static reshape or a graph with a batch baked in breaks at one batch only;
    at a batch that holds them all, on the outputs of the last timed call: ``window_candidate``).
    ``on_phase`` hears load, warm-up, timed and parity as each begins.
    """
    row = cell.empty_row()
    try:
        registry.import_plugin_modules(list(cell.plugin_modules))
        runtime_cls = registry.runtimes.require(cell.runtime)
        reference = np.load(cell.reference) if cell.reference else None
        artifact = _load_artifact(cell)
        if artifact.path is None and artifact.model is not None:
            # Built before the window, for every batch alike: the first cell of a worker builds
            # the module and later ones reuse it, and neither's load time or memory counts that.
            artifact.model.build()
        inputs = _inputs(cell, reference)
        host_batch, parity_images = batches.tile(inputs, cell.batch), batches.size(inputs)  # no reference: unused
        del inputs  # not held through the memory window
        with contextlib.ExitStack() as loaded:
            with memory_window(cell.sample, gpu=cell.device.startswith("cuda")) as memory:  # NVML: NVIDIA only
                on_phase("load")
                started = time.perf_counter()
                runtime = loaded.enter_context(runtime_cls(cell.runtime_options).load(artifact))
                feeds = runtime.prepare(host_batch)  # compiles for runtimes that compile per shape
                row.load_seconds = time.perf_counter() - started
                with (
                    TegrastatsSampler(enabled="tegrastats" in cell.sample) as power,
                    NvmlSampler(enabled="nvml" in cell.sample) as gpu,
                ):  # each a no-op without its GPU
                    result = measure(runtime, feeds, cell.batch, cell.policy, on_phase=on_phase)
                gpu_window = gpu.window(result.window_seconds, result.batch * len(result.samples_ms))
            candidate = None
            if reference is not None:
                on_phase("parity")
                started = time.perf_counter()
                candidate = window_candidate(runtime, result, parity_images)
            del feeds  # the timed buffers go before parity prepares its own
            if reference is not None:
                row.parity = check_parity(runtime, reference, cell, known_accuracy, candidate)
                row.parity_seconds = time.perf_counter() - started
            row.runtime_info = dict(runtime.info)
            if power.samples:
                row.runtime_info["tegrastats"] = power.summary()
            if gpu_window is not None:
                row.runtime_info["nvml"] = gpu_window.to_dict()
                result.warnings.extend(gpu_window.warnings())
        _fill_measurement(row, result)
        # The runtime's own tool (trtexec) on the same artifact, after unloading and outside every window.
        native = runtime.cross_check(
            (cell.batch, *batches.arrays(host_batch)[0].shape[1:]),
            result.stats.median,
            result.device_stats.median if result.device_stats else None,
        )
        if native:
            row.runtime_info["cross_check"] = native
        row.precision_used = row.runtime_info.get("precision_used")
        row.threads = row.runtime_info.get("threads")
        row.batch_shape = row.runtime_info.get("batch_shape") or artifact_batch_shape(artifact)
        if memory is not None:
            row.memory = memory.report().rounded()
        if artifact.path is not None:
            row.artifact = ArtifactRecord(
                path=str(artifact.path),
                size_mb=round(artifact.size_bytes() / 2**20, 3),
                export_seconds=artifact.manifest.get("export_seconds"),
            )
    except Exception as exc:  # every failure is a status on this row, never the end of a sweep
        row.status = Status.OOM if is_out_of_memory(exc) else Status.ERROR
        row.message = (
            first_line(exc) if isinstance(exc, DeployBenchError) else f"{type(exc).__name__}: {first_line(exc)}"
        )
    return row


def run_cells(
    cells: list[Cell],
    on_phase: Callable[[int, str], None] = lambda index, phase: None,
    on_row: Callable[[int, Row], None] = lambda index, row: None,
) -> list[Row]:
    """Measure ``cells``, one artifact at its batch sizes, one after another in this process.

    The ``--dataset`` accuracy depends on the artifact alone, so it is measured at the first
    batch and carried to the others (``accuracy.measured_at_batch``). Between cells the
    garbage of the last one is collected, so the next window starts from what stays loaded.
    """
    assert len({(c.artifact_dir, c.runtime, c.precision, c.reference) for c in cells}) <= 1, "one artifact per call"
    accuracy: dict[str, Any] | None = None
    rows = []
    try:
        for index, cell in enumerate(cells):
            row = run_cell(cell, functools.partial(on_phase, index), accuracy)
            row.runtime_info["worker_pid"] = os.getpid()  # which rows shared a process
            if accuracy is None and row.parity and row.parity.accuracy:
                accuracy = dict(row.parity.accuracy, measured_at_batch=cell.batch)
            on_row(index, row)
            rows.append(row)
            gc.collect()
    finally:
        _built.clear()  # in-process runs (--no-isolate) keep no model past its artifact
    return rows


def artifact_batch_shape(artifact: Artifact) -> str:
    """``static`` when the artifact accepts one batch size, else ``dynamic``."""
    return "dynamic" if artifact.batch.dynamic else "static"


def _fill_measurement(row: Row, result: Measurement) -> None:
    row.stats = result.stats
    row.device_stats = result.device_stats
    row.own_stats, row.own_clock = result.own_stats, result.own_clock
    row.samples_ms = [round(s, 5) for s in result.samples_ms]
    row.ms_per_image = result.ms_per_image
    row.throughput = result.throughput
    row.items_per_call = result.items_per_call
    row.window_seconds = result.window_seconds
    row.first_inference_ms = result.first_inference_ms
    row.timed_region = result.timed_region
    row.median_ci_ms = [round(v, 5) for v in result.median_ci_ms]
    row.stop_reason = result.stop_reason
    row.requests_in_flight = result.requests_in_flight
    row.warmup_iters = result.warmup_iters
    row.warmup_seconds = result.warmup_seconds
    row.warnings = list(result.warnings)
