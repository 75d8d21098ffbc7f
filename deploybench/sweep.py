"""Plan and run a comparison: models x runtimes x precisions x batch sizes.

For each model: build the parity reference once (PyTorch eager FP32 on seeded inputs or
real images), export each artifact through the cache, then run every cell, usually in
its own worker process. Each finished row is written to the results file at once, so an
interrupted sweep keeps what it measured and ``--resume`` finishes the rest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from deploybench import isolation, peak, registry
from deploybench.artifact import Artifact, BatchRange
from deploybench.cache import ArtifactCache
from deploybench.cell import Cell, run_in_chunks
from deploybench.errors import DeployBenchError, UsageError
from deploybench.exporters.base import ExportOptions
from deploybench.harness import MeasurePolicy
from deploybench.models import ModelRef, ModelSpec, example_batch, resolve
from deploybench.results import Results, Row
from deploybench.runtimes.base import RuntimeOptions

log = logging.getLogger(__name__)
DEFAULT_RUNTIMES = ("torch", "torchscript", "onnxruntime", "openvino", "aoti")
AUTO_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
PYTORCH_FORMAT = "pytorch"
NO_GPU = "needs a CUDA GPU and there is no CUDA GPU on this machine; run it on a GPU machine or use --target cpu"


def parse_batches(text: str) -> tuple[int, ...] | str:
    """``1,8,32`` or ``auto``."""
    if text.strip() == "auto":
        return "auto"
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"malformed batch list {text!r}; write sizes like 1,8,32 or 'auto'") from None
    if not values or any(v < 1 for v in values):
        raise UsageError(f"malformed batch list {text!r}; sizes must be positive integers, e.g. 1,8,32")
    return values


@dataclass(frozen=True)
class SweepConfig:
    models: tuple[str, ...]
    runtimes: tuple[str, ...] = DEFAULT_RUNTIMES
    formats: tuple[str, ...] | None = None  # filter; None = whatever the runtimes load
    precisions: tuple[str, ...] = ("fp32",)
    batches: tuple[int, ...] | str = (1, 8)
    device: str = "cpu"
    threads: int | None = None
    policy: MeasurePolicy = field(default_factory=MeasurePolicy)
    isolate: bool = True
    timeout_s: float = isolation.DEFAULT_TIMEOUT_S
    parity_images: int = 8
    images_dir: str | None = None
    dataset_dir: str | None = None  # ImageFolder layout: adds top-1/top-5 accuracy per row
    dataset_limit: int = 1000
    tolerance: dict[str, float] = field(default_factory=dict)
    pretrained: bool = False
    checkpoint: str | None = None
    trust_checkpoint: bool = False
    export: ExportOptions = field(default_factory=ExportOptions)
    runtime_options: RuntimeOptions = field(default_factory=RuntimeOptions)
    shard: tuple[int, int] = (1, 1)  # this shard (1-based) of N
    retry_failed: bool = False  # with a resumed Results: run again the cells that did not end "ok"
    sample: tuple[str, ...] = ("rss",)  # what to sample during a run (a target's "sample"): rss, nvml, tegrastats

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """The sizes to try: the given list, or the doubling ladder for ``auto``."""
        return AUTO_BATCHES if self.batches == "auto" else self.batches  # type: ignore[return-value]


@dataclass(frozen=True)
class PlannedCell:
    model: str
    runtime: str
    format: str
    precision: str
    artifact_precision: str


def format_of(runtime: str, wanted: tuple[str, ...] | None) -> str | None:
    """The artifact format a runtime loads, honouring a ``--formats`` filter."""
    formats = registry.runtimes.get(runtime).formats
    for fmt in formats:
        if wanted is None or fmt in wanted or (fmt == PYTORCH_FORMAT and "torch" in wanted):
            return fmt
    return None


def plan(config: SweepConfig, model: str) -> tuple[list[PlannedCell], list[str]]:
    """The cells worth running for one model, and why the others are skipped."""
    from deploybench.env import has_cuda

    cells, skipped = [], []
    # GPU targets (a100, h100, edge) on a machine without one: refuse every cell up front, with
    # the reason, rather than fail late in each worker.
    no_gpu = config.device.startswith("cuda") and not has_cuda()
    wanted = tuple(registry.exporters.canonical(f) if f not in (PYTORCH_FORMAT, "torch") else f
                   for f in config.formats) if config.formats else None
    for name in config.runtimes:
        runtime = registry.runtimes.canonical(name)
        runtime_cls = registry.runtimes.get(runtime)
        fmt = format_of(runtime, wanted)
        if fmt is None:
            continue
        available = registry.runtimes.availability(runtime)
        for precision in config.precisions:
            why = NO_GPU if no_gpu else runtime_cls.supports(fmt, config.device, precision)
            artifact_precision = precision
            if why is None and fmt != PYTORCH_FORMAT:
                exporter = registry.exporters.get(fmt)
                if precision not in exporter.precisions:
                    artifact_precision = "fp32"  # e.g. OpenVINO bf16 compute on an FP32 IR
                if config.device not in exporter.devices:
                    why = f"{fmt} does not export for {config.device}"
                elif not registry.exporters.availability(fmt).ok:
                    why = f"{fmt} exporter: {registry.exporters.availability(fmt).reason}"
            if why is None and not available.ok:
                why = f"{runtime}: {available.reason}"
            if why:
                skipped.append(f"{model} {runtime} {precision}: {why}")
            else:
                cells.append(PlannedCell(model, runtime, fmt, precision, artifact_precision))
    return cells, skipped


def parity_inputs(spec: ModelSpec, config: SweepConfig) -> np.ndarray:
    if config.images_dir:
        from deploybench.images import image_files, load_images

        return load_images(image_files(Path(config.images_dir))[: config.parity_images], spec.input, spec.preprocess)
    return example_batch(spec.input, config.parity_images, seed=1234)


def dataset_arrays(spec: ModelSpec, config: SweepConfig) -> dict[str, np.ndarray]:
    """``--dataset DIR`` (ImageFolder) as inputs and labels, or nothing."""
    if not config.dataset_dir:
        return {}
    from deploybench.images import image_folder, load_images

    files, labels, _ = image_folder(Path(config.dataset_dir))
    files, labels = files[: config.dataset_limit], labels[: config.dataset_limit]
    return {"dataset_inputs": load_images(files, spec.input, spec.preprocess), "dataset_labels": np.asarray(labels)}


def build_reference(spec: ModelSpec, inputs: np.ndarray, path: Path,
                    dataset: dict[str, np.ndarray] | None = None) -> Path:
    """PyTorch eager FP32 (TF32 off) outputs on ``inputs`` (and the dataset), saved beside them as .npz."""
    runtime = registry.runtimes.get("torch")(RuntimeOptions(device="cpu", precision="fp32"))
    arrays: dict[str, np.ndarray] = dict(dataset or {})
    with runtime.load(Artifact.from_module(spec)):
        outputs = run_in_chunks(runtime, inputs, min(len(inputs), 8))
        if dataset:
            arrays["dataset_reference"] = run_in_chunks(runtime, dataset["dataset_inputs"], 32)[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays.update({f"output{i}": o for i, o in enumerate(outputs)})
    np.savez(path, inputs=inputs, n_outputs=len(outputs), **arrays)
    return path


def _export_batch_range(batches: tuple[int, ...]) -> BatchRange:
    """The export default (1:1:64) unless the sweep needs more, so `export` and `compare` share artifacts."""
    default = ExportOptions().batch
    return replace(default, max=max(default.max, *batches))


def shard_of(key: str, shards: int) -> int:
    """A stable 1-based shard for a cell key (the same on every machine and Python).

    SHA-256 rather than CRC-32: CRC is linear, so keys that differ in one character (batch 1
    vs 2) tend to share their low bits and whole runtimes landed in one shard.
    """
    import hashlib

    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % shards + 1


ProgressFn = Callable[[str], None]


class Sweep:
    """Runs a SweepConfig, writing each finished row to ``results_path`` (if given)."""

    def __init__(self, config: SweepConfig, cache: ArtifactCache, results: Results,
                 results_path: Path | None = None, work_dir: Path | None = None,
                 progress: ProgressFn = lambda message: None) -> None:
        self.config, self.cache, self.results = config, cache, results
        self.results_path, self.progress = results_path, progress
        self.work_dir = work_dir or cache.root / "references"
        # --resume finishes the missing cells; with retry_failed also those that did not end "ok".
        self.done = {row.key for row in results.rows if row.status == "ok" or not config.retry_failed}
        self.skipped: list[str] = []
        # GPU rows get their share of the device's dense peak (deploybench.peak).
        self.gpu = peak.local_gpu() if config.device.startswith("cuda") else None

    def _record(self, row: Row) -> None:
        self.results.upsert(row)
        if self.results_path is not None:
            self.results.save(self.results_path)
        self.done.add(row.key)

    def run(self) -> Results:
        for model in self.config.models:
            self._run_model(model)
        return self.results

    def _in_shard(self, key: str) -> bool:
        index, count = self.config.shard
        return count == 1 or shard_of(key, count) == index

    def _run_model(self, model_name: str) -> None:
        config = self.config
        ref = ModelRef(model_name, pretrained=config.pretrained, checkpoint=config.checkpoint,
                       trust_checkpoint=config.trust_checkpoint)
        spec = resolve(ref)
        for note in spec.notes:
            self.progress(f"{spec.name}: {note}")
        planned, skipped = plan(config, model_name)
        self.skipped += skipped
        batches = config.batch_sizes
        todo = [p for p in planned if any(self._in_shard(self._key(spec, p, b)) and self._key(spec, p, b) not in self.done
                                           for b in batches)]
        if not todo:
            return
        reference = build_reference(spec, parity_inputs(spec, config), self.work_dir / f"{spec.identity_hash()[:16]}.npz",
                                    dataset_arrays(spec, config))
        flops = peak.model_flops(spec) if self.gpu else None
        for item in todo:
            artifact_dir, export_info = self._artifact(spec, item)
            for batch in batches:
                key = self._key(spec, item, batch)
                if key in self.done or not self._in_shard(key):
                    continue
                row = self._run_cell(spec, item, batch, artifact_dir, export_info, str(reference), flops)
                if config.batches == "auto" and self._auto_stop(spec, item, row):
                    break

    def _key(self, spec: ModelSpec, item: PlannedCell, batch: int) -> str:
        return Row(spec.name, item.format, item.runtime, self.config.device, item.precision, batch).key

    def _artifact(self, spec: ModelSpec, item: PlannedCell) -> tuple[str | None, dict]:
        """Export through the cache; returns the folder (None for the module) or the failure."""
        if item.format == PYTORCH_FORMAT:
            return None, {}
        exporter = registry.exporters.get(item.format)()
        options = replace(self.config.export, precision=item.artifact_precision, device=self.config.device,
                          batch=_export_batch_range(self.config.batch_sizes))
        self.progress(f"{spec.name}: export {item.format} {item.artifact_precision} ...")
        try:
            artifact, hit = self.cache.get_or_export(exporter, spec, options)
        except DeployBenchError as exc:
            return None, {"error": str(exc)}
        self.progress(f"{spec.name}: {item.format} {item.artifact_precision} "
                      f"{'cached' if hit else 'exported in %.1f s' % artifact.manifest['export_seconds']}")
        return str(artifact.path), {"cache_hit": hit, "export_seconds": artifact.manifest.get("export_seconds"),
                                    "manifest": {k: artifact.manifest.get(k) for k in ("onnx_exporter", "calibration", "opset")
                                                 if artifact.manifest.get(k) is not None}}

    def _run_cell(self, spec: ModelSpec, item: PlannedCell, batch: int, artifact_dir: str | None,
                  export_info: dict, reference: str, flops: int | None = None) -> Row:
        config = self.config
        cell = Cell(model=spec.ref, model_name=spec.name, task=spec.task, format=item.format, runtime=item.runtime, batch=batch,
                    device=config.device, precision=item.precision, artifact_dir=artifact_dir, reference=reference,
                    runtime_options=replace(config.runtime_options, device=config.device, precision=item.precision,
                                            threads=config.threads),
                    policy=config.policy, tolerance=config.tolerance,
                    plugin_modules=tuple(registry.dynamic_plugin_modules()), sample=config.sample)
        label = f"{spec.name} {item.runtime}/{item.format} {item.precision} b{batch}"
        if "error" in export_info:
            row = cell.empty_row()
            row.status, row.message = "export-failed", export_info["error"]
        else:
            self.progress(f"{label}: measuring ...")
            row = isolation.run(cell, isolate=config.isolate, timeout_s=config.timeout_s)
            row.artifact.update(export_info)
            peak.annotate(row, flops, self.gpu)
        self._record(row)
        self.progress(f"{label}: {describe(row)}")
        return row

    def _auto_stop(self, spec: ModelSpec, item: PlannedCell, row: Row) -> bool:
        """--batch auto: stop growing once throughput gains under 5 % or a batch fails."""
        if row.status != "ok":
            return True
        previous = [r for r in self.results.rows if r.model == spec.name and r.runtime == item.runtime
                    and r.precision == item.precision and r.batch < row.batch and r.status == "ok"]
        best = max((r.throughput or 0 for r in previous), default=0)
        return bool(previous) and (row.throughput or 0) < best * 1.05


def describe(row: Row) -> str:
    if row.status != "ok":
        return f"{row.status}: {row.message}"
    verdict = row.parity_verdict or "no parity"
    return f"{row.ms_per_image:.3f} ms/img, {row.throughput:.1f} img/s, parity {verdict}"
