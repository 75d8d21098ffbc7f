"""Plan and run a comparison: models x runtimes x precisions x batch sizes.

For each model: build the parity reference once (PyTorch eager FP32 on seeded inputs or
real images), export each artifact through the cache, then run every cell, usually in
its own worker process. Each finished row is written to the results file at once, so an
interrupted sweep keeps what it measured and ``--resume`` finishes the rest.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from deploybench import batch as batches
from deploybench import isolation, peak, registry, spawn
from deploybench.artifact import Artifact, BatchRange
from deploybench.batch import Batch
from deploybench.cache import ArtifactCache
from deploybench.cell import Cell, run_in_chunks
from deploybench.errors import DeployBenchError, UnknownNameError, UsageError
from deploybench.exporters.base import ExportOptions
from deploybench.harness import MeasurePolicy
from deploybench.inputs import seeded_inputs
from deploybench.model_facts import ModelFacts
from deploybench.model_records import ModelRecords, arrays_digest
from deploybench.models import ModelRef, ModelSpec, resolve
from deploybench.progress import Progress
from deploybench.results import ArtifactRecord, CellKey, Results, Row, Status
from deploybench.runtimes.base import RuntimeOptions
from deploybench.sanity import flag_slower_than_eager

log = logging.getLogger(__name__)
DEFAULT_RUNTIMES = ("torch", "torchscript", "onnxruntime", "openvino", "aoti")
AUTO_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
NO_GPU = "needs a CUDA GPU and there is no CUDA GPU on this machine; run it on a GPU machine or use --target cpu"


def parse_batches(text: str) -> tuple[int, ...] | str:
    """``1,8,32`` or ``auto``; an empty item (``1,,8``) is malformed, not skipped."""
    if text.strip() == "auto":
        return "auto"
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"malformed batch list {text!r}; write sizes like 1,8,32 or 'auto'") from None
    if not values or any(v < 1 for v in values):
        raise UsageError(f"malformed batch list {text!r}; sizes must be positive integers, e.g. 1,8,32")
    return values


WORKER_PER = ("artifact", "cell")


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
    worker_per: str = "artifact"  # one of WORKER_PER: a worker process per artifact (its batch sizes), or per cell
    timeout_s: float = isolation.DEFAULT_TIMEOUT_S
    parity_images: int = 8
    images_dir: str | None = None
    dataset_dir: str | None = None  # ImageFolder layout: adds top-1/top-5 accuracy per row
    dataset_limit: int = 1000
    tolerance: dict[str, float] = field(default_factory=dict)
    pretrained: bool = False
    checkpoint: str | None = None
    trust_checkpoint: bool = False
    data_init: bool = False  # random weights: BatchNorm statistics re-estimated on bundled photos (opt-in)
    checkpoint_partial: bool = False
    export: ExportOptions = field(default_factory=ExportOptions)
    runtime_options: RuntimeOptions = field(default_factory=RuntimeOptions)
    shard: tuple[int, int] = (1, 1)  # this shard (1-based) of N
    retry_failed: bool = False  # with a resumed Results: run again the cells that did not end "ok"
    sample: tuple[str, ...] = ("rss",)  # what to sample during a run (a target's "sample"): rss, nvml, tegrastats
    dynamic_batch: bool = False  # time the dynamic-batch artifact instead of one built for each batch

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """The sizes to try: the given list, or the doubling ladder for ``auto``."""
        return AUTO_BATCHES if isinstance(self.batches, str) else self.batches  # "auto" is the one text

    def record(self, argv: Sequence[str] = ()) -> dict[str, Any]:
        """The configuration a results document keeps: what ran, and what decides comparability.

        Runs measured under another policy or thread count are not comparable
        (``deploybench.comparability`` reads ``policy`` and ``threads`` from here).
        """
        policy = self.policy
        return {
            "argv": list(argv),
            "models": list(self.models),
            "runtimes": list(self.runtimes),
            "precisions": list(self.precisions),
            "batches": self.batches,
            "device": self.device,
            "threads": self.threads,
            "shard": list(self.shard),
            "weights": {
                "pretrained": self.pretrained,
                "checkpoint": self.checkpoint,
                "checkpoint_partial": self.checkpoint_partial,
            },
            "policy": {
                "quick": policy == MeasurePolicy.quick(),
                "min_iters": policy.min_iters,
                "min_seconds": policy.min_seconds,
                "warmup_iters": policy.warmup_iters,
                "warmup_seconds": policy.warmup_seconds,
                "ci_target": policy.ci_target,
                "max_seconds": policy.max_seconds,
            },
        }

    def model_ref(self, name: str) -> ModelRef:
        """``name`` with the weights this sweep asks for."""
        return ModelRef(
            name,
            pretrained=self.pretrained,
            checkpoint=self.checkpoint,
            trust_checkpoint=self.trust_checkpoint,
            checkpoint_partial=self.checkpoint_partial,
            data_init=self.data_init,
        )

    def validate(self) -> list[str]:
        """Refuse what cannot run, before any model is resolved; returns warnings worth printing once.

        Every runtime, format and precision name is checked against the registries (a typo
        fails in a second, not after the first model was built), the model list must name
        something, the thread count must be a positive number, and INT8 calibration must not
        use the parity images.
        """
        if not self.models or not all(name.strip() for name in self.models):
            raise UsageError("no model to run; pass --models A,B (aliases, timm names, YOLO names or files)")
        if not self.runtimes:
            raise UsageError(f"no runtime to run; pass --runtimes, e.g. {','.join(DEFAULT_RUNTIMES)}")
        if self.worker_per not in WORKER_PER:
            raise UsageError(f"--isolate {self.worker_per!r} is not one of {', '.join(WORKER_PER)}")
        for name in self.runtimes:
            registry.runtimes.canonical(name)
            # A mistyped --mode or --compile-mode stops here, before any model is built.
            registry.runtimes.get(name).Options.pick(replace(self.runtime_options, device=self.device))
        for name in self.formats or ():
            registry.exporters.canonical(name)
        valid = registry.known_precisions()
        for precision in self.precisions:
            if precision not in valid:
                raise UnknownNameError("precision", precision, valid)
        if not self.precisions:
            raise UsageError(f"no precision to run; pass --precisions, e.g. {','.join(valid)}")
        calib, images = self.export.calib_data, self.images_dir
        if calib and images and Path(calib).resolve() == Path(images).resolve():
            raise UsageError(
                f"--calib-data and --images both name {images}; INT8 calibration must not see the "
                "parity images: pass a different folder to one of them"
            )
        return threads_warnings(self.threads)


def threads_warnings(threads: int | None) -> list[str]:
    """Refuse a thread count below 1; warn when it asks for more threads than there are logical cores."""
    if threads is None:
        return []
    if threads < 1:
        raise UsageError(f"--threads {threads} is not a thread count; pass 1 or more (default: the physical cores)")
    cores = os.cpu_count() or 1
    if threads > cores:
        return [
            f"--threads {threads} is more than the {cores} logical cores of this machine: the runtimes' threads "
            f"will queue for the cores and the timings measure that contention; pass --threads {cores} or fewer"
        ]
    return []


@dataclass(frozen=True)
class PlannedCell:
    model: str
    runtime: str
    format: str
    precision: str
    artifact_precision: str

    def key(self, model_name: str, device: str, batch: int) -> CellKey:
        """The key of this cell at ``batch`` (``model`` may be an alias; rows carry the resolved name)."""
        return CellKey(model_name, self.format, self.runtime, device, self.precision, batch)


def format_of(runtime: str, wanted: tuple[str, ...] | None) -> str | None:
    """The artifact format a runtime loads, honouring a ``--formats`` filter."""
    formats = registry.runtimes.get(runtime).formats
    for fmt in formats:
        if wanted is None or fmt in wanted:
            return fmt
    return None


@dataclass(frozen=True)
class SkippedCell:
    """A cell the plan leaves out, and why."""

    model: str
    runtime: str
    precision: str
    reason: str
    precision_unsupported: bool = False  # the runtime has no such precision: summarised per model
    device: str = "cpu"

    def __str__(self) -> str:
        return f"{self.model} {self.runtime} {self.precision}: {self.reason}"


def summarise_skips(skipped: list[SkippedCell]) -> list[str]:
    """One line per model and cause rather than one per cell: "m int8: not supported by torch (fp32, …), aoti (…)".

    A sweep over five runtimes and two precisions otherwise prints the same refusal once per
    runtime, per model, and the lines that matter scroll away.
    """
    groups: dict[tuple[str, str], list[SkippedCell]] = {}
    for cell in skipped:
        cause = f"{cell.precision}: not supported by" if cell.precision_unsupported else cell.reason
        groups.setdefault((cell.model, cause), []).append(cell)
    lines = []
    for (model, cause), cells in groups.items():
        if cells[0].precision_unsupported:  # each runtime with the precisions it has
            has = [
                f"{c.runtime} ({', '.join(registry.runtimes.get(c.runtime).precisions_on(c.device))})" for c in cells
            ]
            lines.append(f"{model} {cause} {', '.join(has)}")
        else:
            lines.append(f"{model} {', '.join(f'{c.runtime} {c.precision}' for c in cells)}: {cause}")
    return lines


def _source_problem(fmt: str, spec: ModelSpec | None) -> str | None:
    """Why ``fmt`` cannot be made from the model's source (an ONNX file has no PyTorch module)."""
    if spec is None or spec.has_module:
        return None
    return registry.exporters.get(fmt).source_problem(spec)


def plan(config: SweepConfig, model: str, spec: ModelSpec | None = None) -> tuple[list[PlannedCell], list[SkippedCell]]:
    """The cells worth running for one model, and why the others are skipped (``spec``, when
    given, lets ONNX files skip the runtimes that need a PyTorch module)."""
    from deploybench.env import has_cuda

    cells, skipped = [], []
    # GPU targets (a100, h100, edge) on a machine without one: refuse every cell up front, with
    # the reason, rather than fail late in each worker.
    no_gpu = config.device.startswith("cuda") and not has_cuda()
    wanted = tuple(registry.exporters.canonical(f) for f in config.formats) if config.formats else None
    for name in config.runtimes:
        runtime = registry.runtimes.canonical(name)
        runtime_cls = registry.runtimes.get(runtime)
        fmt = format_of(runtime, wanted)
        if fmt is None:
            continue
        available = registry.runtimes.availability(runtime)
        for precision in config.precisions:
            source_why = _source_problem(fmt, spec)
            why = NO_GPU if no_gpu else source_why or runtime_cls.supports(fmt, config.device, precision)
            artifact_precision = precision
            if why is None:
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
                unsupported = not no_gpu and not source_why and precision not in runtime_cls.precisions
                skipped.append(
                    SkippedCell(model, runtime, precision, why, precision_unsupported=unsupported, device=config.device)
                )
            else:
                cells.append(PlannedCell(model, runtime, fmt, precision, artifact_precision))
    return cells, skipped


def parity_inputs(spec: ModelSpec, config: SweepConfig) -> tuple[Batch, str]:
    """The parity batch and where it came from: ``--images``, else views of bundled photos
    through the model's own preprocessing, else seeded noise (and for models of several inputs)."""
    if config.images_dir:
        from deploybench.images import image_files, load_images

        if spec.extra_inputs:
            raise UsageError(
                f"--images feeds one image input and {spec.name} takes {len(spec.inputs)} inputs; "
                "leave out --images to use seeded inputs"
            )
        files = image_files(Path(config.images_dir))[: config.parity_images]
        images = load_images(files, spec.input, spec.preprocess)  # an unreadable file is named first
        if len(files) < config.parity_images:
            raise UsageError(
                f"--images {config.images_dir} holds {len(files)} image(s); parity needs "
                f"{config.parity_images}: add images to the folder"
            )
        return images, f"{len(files)} images from {config.images_dir}"
    if spec.extra_inputs:
        return (
            seeded_inputs(spec, config.parity_images, seed=1234),
            f"{config.parity_images} seeded noise inputs (seed 1234; the model takes {len(spec.inputs)} inputs)",
        )
    from deploybench.sample_images import PARITY_SEED, sample_batch

    return sample_batch(spec.input, spec.preprocess, config.parity_images, PARITY_SEED)


def dataset_arrays(spec: ModelSpec, config: SweepConfig) -> dict[str, np.ndarray]:
    """``--dataset DIR`` (ImageFolder) as inputs and labels, or nothing."""
    if not config.dataset_dir:
        return {}
    from deploybench.images import image_folder, load_images

    files, labels, _ = image_folder(Path(config.dataset_dir))
    files, labels = files[: config.dataset_limit], labels[: config.dataset_limit]
    return {"dataset_inputs": load_images(files, spec.input, spec.preprocess), "dataset_labels": np.asarray(labels)}


@dataclass(frozen=True)
class ReferenceSource:
    """Where a model's parity reference comes from, and the name rows give it."""

    runtime: str
    label: str
    artifact: Callable[[ModelSpec], Artifact]


PYTORCH_REFERENCE = ReferenceSource("torch", "pytorch-fp32", Artifact.from_module)
# An ONNX file has no module to run eagerly: the file itself in ONNX Runtime, FP32 on the CPU,
# is the closest thing to the author's intent, and every candidate is judged against it.
ONNX_FILE_REFERENCE = ReferenceSource("onnxruntime", "onnxruntime-fp32 (no PyTorch module)", Artifact.from_onnx_file)


def reference_source(spec: ModelSpec) -> ReferenceSource:
    return PYTORCH_REFERENCE if spec.has_module else ONNX_FILE_REFERENCE


def build_reference(
    spec: ModelSpec, inputs: Batch, path: Path, dataset: dict[str, np.ndarray] | None = None, origin: str = ""
) -> Path:
    """Reference outputs on ``inputs`` (and the dataset), saved beside them as .npz: PyTorch eager
    FP32 (TF32 off), or ONNX Runtime FP32 on the CPU for an ONNX file (see ``reference_source``), with
    what the inputs were (``origin``)."""
    source = reference_source(spec)
    runtime = registry.runtimes.get(source.runtime)(RuntimeOptions(device="cpu", precision="fp32"))
    arrays: dict[str, np.ndarray] = dict(dataset or {})
    with runtime.load(source.artifact(spec)):
        outputs = run_in_chunks(runtime, inputs, spec.fixed_batch or min(batches.size(inputs), 8))
        if dataset:
            arrays["dataset_reference"] = run_in_chunks(runtime, dataset["dataset_inputs"], spec.fixed_batch or 32)[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays.update({f"output{i}": o for i, o in enumerate(outputs)})
    contents: dict[str, Any] = {
        "n_outputs": len(outputs),
        "inputs_origin": origin,
        **arrays,
        **batches.save_arrays(inputs, "inputs"),
    }
    np.savez(path, **contents)
    return path


def _export_batch_range(batches: tuple[int, ...]) -> BatchRange:
    """The export default (1:1:64) unless the sweep needs more, so `export` and `compare` share artifacts."""
    default = ExportOptions().batch
    return replace(default, max=max(default.max, *batches))


def export_batch(static_per_batch: bool, batch: int, batches: tuple[int, ...], dynamic: bool) -> BatchRange:
    """The batch range of the artifact a cell at ``batch`` times.

    Formats whose tools make static shapes faster (TensorRT) get one artifact per batch,
    min = opt = max = batch, the one ``deploybench export --batch N`` writes. The others
    share the dynamic default and are fixed to the batch at load where their runtime can
    (OpenVINO reshapes before compiling). ``dynamic`` keeps the shared dynamic artifact.
    """
    if static_per_batch and not dynamic:
        return BatchRange(batch, batch, batch)
    return _export_batch_range(batches)


def shard_of(key: CellKey | str, shards: int) -> int:
    """A stable 1-based shard for a cell key (the same on every machine and Python).

    SHA-256 rather than CRC-32: CRC is linear, so keys that differ in one character (batch 1
    vs 2) tend to share their low bits and whole runtimes landed in one shard.
    """
    import hashlib

    return int.from_bytes(hashlib.sha256(str(key).encode()).digest()[:8], "big") % shards + 1


ProgressFn = Callable[[str], None]


class Sweep:
    """Runs a SweepConfig, writing each finished row to ``results_path`` (if given)."""

    def __init__(
        self,
        config: SweepConfig,
        cache: ArtifactCache,
        results: Results,
        results_path: Path | None = None,
        work_dir: Path | None = None,
        progress: ProgressFn = lambda message: None,
        tracker: Progress | None = None,
    ) -> None:
        self.config, self.cache, self.results = config, cache, results
        self.results_path, self.progress = results_path, progress
        # Cells done of the total, the current cell's phase, the ETA; silent unless the CLI gives one.
        self.tracker = tracker or Progress(stream=io.StringIO(), live=False)
        for warning in config.validate():  # before any model is resolved
            progress(f"warning: {warning}")
        self.work_dir = work_dir or cache.root / "references"
        # Facts and references of pinned models from earlier runs: a warm run builds no model here.
        self.records = ModelRecords(cache.records_dir)
        # --resume finishes the missing cells; with retry_failed also those that did not end "ok".
        self.done = {row.key for row in results.rows if row.status == Status.OK or not config.retry_failed}
        self.skipped: list[SkippedCell] = []
        # GPU rows get their share of the device's dense peak (deploybench.peak).
        self.gpu = peak.local_gpu() if config.device.startswith("cuda") else None

    def nothing_ran(self) -> str | None:
        """Why this sweep produced no row at all, or None when it has rows (or is one shard of several)."""
        if self.results.rows or self.config.shard != (1, 1):
            return None
        if self.skipped:
            shown = "; ".join(map(str, self.skipped[:3]))
            more = f"; and {len(self.skipped) - 3} more" if len(self.skipped) > 3 else ""
            return f"every cell was skipped ({shown}{more})"
        loads = ", ".join(
            f"{name} loads {'/'.join(registry.runtimes.get(name).formats)}" for name in self.config.runtimes
        )
        return f"no runtime loads {', '.join(self.config.formats or ())} ({loads})"

    def _record(self, row: Row) -> None:
        self.results.upsert(row)
        if self.results_path is not None:
            self.results.save(self.results_path)
        self.done.add(row.key)

    def run(self) -> Results:
        # The zygote imports torch while this process resolves the models.
        started = spawn.start_zygote(self.config.runtimes) if self.config.isolate else []
        # Every model planned first: the progress display knows the total, and a model that does
        # not resolve stops the sweep before anything is measured.
        try:
            work = [self._plan_model(model) for model in self.config.models]
        except BaseException:
            spawn.stop_zygotes(started)
            raise
        if not any(spawn.forks_from_zygote(item.runtime) for _, todo in work for item in todo):
            spawn.stop_zygotes(started)  # every torch cell done (--resume), skipped or filtered out
        for spec, todo in work:
            self._run_model(spec, todo)
            spec.release()  # a built module stays in this process only while its model runs
        for row in flag_slower_than_eager(self.results):
            self.progress(f"{row.model} {row.runtime}/{row.format} {row.precision} b{row.batch}: {row.warnings[-1]}")
        if self.results_path is not None and self.results.rows:
            self.results.save(self.results_path)
        return self.results

    def _in_shard(self, key: CellKey) -> bool:
        index, count = self.config.shard
        return count == 1 or shard_of(key, count) == index

    def _plan_model(self, model_name: str) -> tuple[ModelSpec, list[PlannedCell]]:
        """The model and its cells still to run (not done, in this shard); counted into the progress total."""
        spec = resolve(self.config.model_ref(model_name))
        for note in spec.notes:
            self.progress(f"{spec.name}: {note}")
        planned, skipped = plan(self.config, model_name, spec)
        self.skipped += skipped
        todo = [p for p in planned if self._wanted_batches(spec, p)]
        self.tracker.add(sum(len(self._wanted_batches(spec, p)) for p in todo))
        return spec, todo

    def _wanted_batches(self, spec: ModelSpec, item: PlannedCell) -> list[int]:
        return [
            b
            for b in self.config.batch_sizes
            if (key := self._key(spec, item, b)) not in self.done and self._in_shard(key)
        ]

    def _run_model(self, spec: ModelSpec, todo: list[PlannedCell]) -> None:
        config = self.config
        if not todo:
            return
        inputs, origin = parity_inputs(spec, config)
        dataset = dataset_arrays(spec, config)
        digest = arrays_digest({**batches.save_arrays(inputs, "inputs"), **dataset})
        reference = self.records.reference(
            spec,
            digest,
            origin,
            # Named by its inputs too: a sweep of the same model on other images keeps its own file.
            self.work_dir / f"{spec.identity_hash()[:16]}-{digest[:12]}.npz",
            lambda path: build_reference(spec, inputs, path, dataset, origin),
        )
        if spec.checkpoint_load is not None:  # what the checkpoint matched is known once the model is built
            self.progress(f"{spec.name}: weights {spec.weights}")
        facts = self.results.models.get(spec.name) or self.records.facts(spec)
        self.results.models[spec.name] = facts
        for item in todo:
            wanted = self._wanted_batches(spec, item)
            if config.batches == "auto":  # each batch decides whether the next is worth running
                for done, batch in enumerate(wanted, start=1):
                    (row,) = self._run_artifact(spec, item, [batch], str(reference), facts)
                    if self._auto_stop(spec, item, row):
                        self.tracker.add(done - len(wanted))  # the larger batches will not run
                        break
                continue
            by_artifact: dict[BatchRange, list[int]] = {}
            for batch in wanted:  # static formats get an artifact per batch, dynamic ones share one
                by_artifact.setdefault(self._export_batch(item, batch), []).append(batch)
            for artifact_batches in by_artifact.values():
                groups = [artifact_batches] if config.worker_per == "artifact" else [[b] for b in artifact_batches]
                for group in groups:
                    self._run_artifact(spec, item, group, str(reference), facts)

    def _key(self, spec: ModelSpec, item: PlannedCell, batch: int) -> CellKey:
        return item.key(spec.name, self.config.device, batch)

    def _export_batch(self, item: PlannedCell, batch: int) -> BatchRange:
        static = registry.exporters.get(item.format).static_per_batch
        return export_batch(static, batch, self.config.batch_sizes, self.config.dynamic_batch)

    def _artifact(self, spec: ModelSpec, item: PlannedCell, batch: BatchRange) -> ArtifactRecord | str | None:
        """Export through the cache: the artifact's record, the export's failure (its message), or
        None for the in-memory module."""
        exporter = registry.exporters.get(item.format)()
        if exporter.in_memory:  # the worker builds the module itself
            return None
        options = replace(self.config.export, precision=item.artifact_precision, device=self.config.device, batch=batch)
        self.tracker.phase("export")
        try:
            artifact, hit = self.cache.get_or_export(exporter, spec, options)
        except DeployBenchError as exc:
            return str(exc)
        seconds = artifact.manifest.get("export_seconds")
        how = "cached" if hit else f"exported in {seconds:.1f} s"
        self.progress(f"{spec.name}: {item.format} {item.artifact_precision} {how}")
        kept = {k: artifact.manifest[k] for k in ("onnx_exporter", "calibration", "opset") if artifact.manifest.get(k)}
        return ArtifactRecord(path=str(artifact.path), export_seconds=seconds, cache_hit=hit, manifest=kept)

    def _run_artifact(
        self, spec: ModelSpec, item: PlannedCell, sizes: list[int], reference: str, facts: ModelFacts | None
    ) -> list[Row]:
        """Export (or find in the cache) the artifact for batch ``sizes`` and measure it at each, in one worker."""
        config = self.config
        labels = {batch: f"{spec.name} {item.runtime}/{item.format} {item.precision} b{batch}" for batch in sizes}
        self.tracker.begin(labels[sizes[0]])
        exported = self._artifact(spec, item, self._export_batch(item, sizes[0]))
        record = exported if isinstance(exported, ArtifactRecord) else None
        cells = [
            Cell(
                model=spec.ref,
                model_name=spec.name,
                task=spec.task,
                format=item.format,
                runtime=item.runtime,
                batch=batch,
                device=config.device,
                precision=item.precision,
                artifact_dir=record.path if record else None,
                reference=reference,
                runtime_options=replace(
                    config.runtime_options,
                    device=config.device,
                    precision=item.precision,
                    threads=config.threads,
                    dynamic_batch=config.dynamic_batch,
                ),
                policy=config.policy,
                tolerance=config.tolerance,
                plugin_modules=tuple(registry.dynamic_plugin_modules()),
                sample=config.sample,
            )
            for batch in sizes
        ]
        rows: list[Row] = []
        if isinstance(exported, str):
            for cell in cells:
                row = cell.empty_row()
                row.status, row.message = Status.EXPORT_FAILED, exported
                rows.append(self._finish_row(spec, row, None, facts, labels[cell.batch], measured=False))
            return rows

        def on_phase(cell: Cell, phase: str) -> None:
            if self.tracker.cell != labels[cell.batch]:
                self.tracker.begin(labels[cell.batch])
            self.tracker.phase(phase)

        def on_row(row: Row) -> None:
            rows.append(self._finish_row(spec, row, record, facts, labels[row.batch]))

        isolation.run_group(cells, isolate=config.isolate, timeout_s=config.timeout_s, on_phase=on_phase, on_row=on_row)
        return rows

    def _finish_row(
        self,
        spec: ModelSpec,
        row: Row,
        exported: ArtifactRecord | None,
        facts: ModelFacts | None,
        label: str,
        measured: bool = True,
    ) -> Row:
        """What the sweep adds to a worker's row (how the artifact was obtained, the reference, the
        weights, FLOP rates); recorded at once."""
        if self.tracker.cell != label:
            self.tracker.begin(label)
        if exported is not None:  # the worker knows the artifact's size; the sweep, how it was obtained
            measured_file = row.artifact or ArtifactRecord(path=exported.path)
            row.artifact = replace(
                measured_file,
                export_seconds=exported.export_seconds,
                cache_hit=exported.cache_hit,
                manifest=exported.manifest,
            )
        if row.parity is not None:
            row.parity_reference = reference_source(spec).label
        row.weights = spec.weights
        if facts is not None:
            peak.annotate(row, facts.flops, self.gpu)
            if row.status == Status.OK and (achieved := facts.achieved_gflops(row.throughput)) is not None:
                row.gflops_per_s = round(achieved, 3)
        self._record(row)
        self.tracker.finish(describe(row), measured=measured)
        return row

    def _auto_stop(self, spec: ModelSpec, item: PlannedCell, row: Row) -> bool:
        """--batch auto: stop growing once throughput gains under 5 % or a batch fails."""
        if row.status != Status.OK:
            return True
        previous = [
            r
            for r in self.results.rows
            if r.model == spec.name
            and r.runtime == item.runtime
            and r.precision == item.precision
            and r.batch < row.batch
            and r.status == Status.OK
        ]
        best = max((r.throughput or 0 for r in previous), default=0)
        return bool(previous) and (row.throughput or 0) < best * 1.05


def describe(row: Row) -> str:
    if row.status != Status.OK:
        return f"{row.status}: {row.message}"
    verdict = row.parity_verdict or "no parity"
    return f"{row.ms_per_image:.3f} ms/img, {row.throughput:.1f} img/s, parity {verdict}"
