"""Exporter base: a template method that validates, exports, checks and records.

Subclasses declare their capabilities as class attributes and implement ``_export``;
the base refuses unsupported combinations up front, times the export, loads the result
back once through the format's own runtime and runs one batch, then writes the manifest.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from deploybench import registry
from deploybench.artifact import Artifact, BatchRange, TensorInfo
from deploybench.env import library_versions
from deploybench.errors import DeployBenchError, ExportError, UnsupportedError, first_line
from deploybench.files import module_hash
from deploybench.inputs import example_batch, seeded_inputs
from deploybench.models import ModelSpec
from deploybench.plugin_options import PluginOptions, at_least

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportOptions:
    """Everything a user can ask of an export. Exporters read the fields they understand."""

    precision: str = "fp32"
    device: str = "cpu"
    batch: BatchRange = BatchRange(1, 1, 64)
    opset: int | None = None
    simplify: bool = False
    script: bool = False  # TorchScript: script instead of trace
    calib_data: str | None = None  # folder of images for INT8 calibration
    calib_size: int = 64
    workspace_gb: float = 4.0
    timing_cache: str | None = None  # TensorRT; the cache folder fills this in
    # Layers kept in FP32 inside a lower-precision artifact, named as in the FP32 graph
    # (what ``deploybench triage`` suggests); formats that support it list ``keep_fp32_precisions``.
    keep_fp32: tuple[str, ...] = ()


@dataclass(frozen=True)
class ArtifactOptions(PluginOptions):
    """What every artifact is built for; a format adds the settings that change its file."""

    precision: str = "fp32"
    batch: BatchRange = BatchRange(1, 1, 64)


@dataclass(frozen=True)
class DeviceArtifactOptions(ArtifactOptions):
    """For formats whose file depends on the device it was traced or compiled on."""

    device: str = "cpu"


@dataclass(frozen=True)
class CalibratedOptions(ArtifactOptions):
    """INT8 calibration: the images (None: bundled photos) and how many."""

    calib_data: str | None = None
    calib_size: int = 64

    def check(self) -> None:
        at_least("--calib-size", self.calib_size, 1)


class Exporter(ABC):
    """One deployable format."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    suffix: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    dynamic_batch: ClassVar[bool] = True
    # True: a comparison builds one artifact per timed batch (min = opt = max = batch), as
    # trtexec --shapes users do, because this format's tools make static shapes faster.
    static_per_batch: ClassVar[bool] = False
    # The runtime that loads the result back once after export.
    check_runtime: ClassVar[str | None] = None
    # The ExportOptions fields that change this format's artifact, checked when picked; they
    # are the cache key, so a new field is part of it without anything kept in step.
    Options: ClassVar[type[PluginOptions]] = DeviceArtifactOptions
    # Libraries whose versions change the artifact.
    key_libraries: ClassVar[tuple[str, ...]] = ("torch",)
    # False where the format can also be made from an existing ONNX file (runtime-only models).
    needs_module: ClassVar[bool] = True
    # True: the artifact is the module in memory (PyTorch itself); nothing is written or cached.
    in_memory: ClassVar[bool] = False
    # Precisions at which named layers can stay in FP32 (ExportOptions.keep_fp32).
    keep_fp32_precisions: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "key_options" in vars(cls):  # the tuple plugins declared before Options existed
            raise TypeError(
                f"{cls.__name__} declares key_options; declare Options, a PluginOptions dataclass "
                "of the settings that change its artifact (they are its cache key)"
            )

    # -- the template method ---------------------------------------------------------
    def validate(self, model: ModelSpec, options: ExportOptions) -> None:
        """Refuse what this format cannot do, listing what it can."""
        registry.exporters.require(self.name)
        self.Options.pick(options)  # its own settings (--opset, --workspace-gb, ...) in range
        if options.precision not in self.precisions:
            raise UnsupportedError(
                f"{self.name} does not support precision {options.precision!r}; supported: {', '.join(self.precisions)}"
            )
        if options.device not in self.devices:
            raise UnsupportedError(
                f"{self.name} does not export for device {options.device!r}; supported: {', '.join(self.devices)}"
            )
        if options.batch.dynamic and not self.dynamic_batch:
            raise UnsupportedError(f"{self.name} artifacts have a static batch; pass one batch size")
        if options.keep_fp32 and options.precision not in self.keep_fp32_precisions:
            can = f"only at {', '.join(self.keep_fp32_precisions)}" if self.keep_fp32_precisions else "at no precision"
            raise UnsupportedError(f"{self.name} can keep layers in FP32 {can}, not at {options.precision}")
        if why := self.source_problem(model):
            raise UnsupportedError(why)

    @classmethod
    def source_problem(cls, model: ModelSpec) -> str | None:
        """Why this format cannot be made from ``model`` (an ONNX file without a module), or None."""
        if cls.needs_module and not model.has_module:
            return (
                f"{cls.name} exports from a PyTorch module and {model.name} is an ONNX file "
                "(runtime-only: use a runtime that reads ONNX, such as onnxruntime or openvino)"
            )
        return None

    def export(self, model: ModelSpec, options: ExportOptions, out_dir: Path) -> Artifact:
        """Export ``model`` into ``out_dir`` (an empty folder) and return the checked artifact."""
        self.validate(model, options)
        out_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        try:
            main_file, extra_manifest = self._export(model, options, out_dir)
        except DeployBenchError:
            raise
        except Exception as exc:  # the library's own message is the useful part
            raise ExportError(
                f"{self.name} export of {model.name} failed: {type(exc).__name__}: {first_line(exc)}"
            ) from exc
        seconds = time.perf_counter() - started
        artifact = Artifact(
            format=self.name,
            path=out_dir,
            main_file=main_file,
            precision=options.precision,
            device=options.device,
            batch=artifact_batch(model, options),
            inputs=[TensorInfo(spec.name, ["batch", *spec.shape], spec.dtype) for spec in model.inputs],
            model=model,
        )
        artifact.outputs = self._check(artifact, model)
        artifact.record_files()
        artifact.manifest.update(
            {
                "model": model.name,
                "model_ref": model.ref.to_dict(),
                "source_identity": model.identity(),
                "source_hash": module_hash(model.build()) if model.has_module else model.identity()["weights"],
                "exporter": self.name,
                "exporter_class": f"{type(self).__module__}.{type(self).__qualname__}",
                "libraries": {k: v for k, v in library_versions().items() if v},
                "options": _jsonable(asdict(options)),
                "export_seconds": round(seconds, 3),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "size_bytes": artifact.size_bytes(),
                **extra_manifest,
            }
        )
        artifact.save()
        return artifact

    def _check(self, artifact: Artifact, model: ModelSpec) -> list[TensorInfo]:
        """Load the artifact back once and run one batch; returns the output descriptions."""
        if self.check_runtime is None or not registry.runtimes.availability(self.check_runtime).ok:
            artifact.manifest["checked_with"] = None
            return []
        from deploybench.runtimes.base import RuntimeOptions

        runtime_cls = registry.runtimes.get(self.check_runtime)
        batch = seeded_inputs(model, artifact.batch.opt)
        try:
            with runtime_cls(RuntimeOptions(device=artifact.device, precision=artifact.precision)).load(artifact) as rt:
                outputs = rt.run(batch)
        except DeployBenchError as exc:
            raise ExportError(f"{self.name} artifact for {model.name} was written but does not load: {exc}") from exc
        except Exception as exc:
            raise ExportError(
                f"{self.name} artifact for {model.name} was written but does not load "
                f"in {self.check_runtime}: {type(exc).__name__}: {first_line(exc)}"
            ) from exc
        artifact.manifest["checked_with"] = self.check_runtime
        return [
            TensorInfo(f"output{i}" if len(outputs) > 1 else "output", ["batch", *o.shape[1:]], str(o.dtype))
            for i, o in enumerate(outputs)
        ]

    def bind_cache(self, options: ExportOptions, cache_root: Path) -> ExportOptions:
        """Options completed with files that live in the cache folder (e.g. a timing cache)."""
        return options

    def cache_identity(self, options: ExportOptions) -> dict[str, Any]:
        versions = library_versions()
        identity = {
            "format": self.name,
            "options": asdict(self.Options.pick(options)),
            "libraries": {k: versions.get(k) for k in self.key_libraries},
        }
        if options.keep_fp32:  # only when set, so every artifact cached before the option keeps its key
            identity["keep_fp32"] = sorted(options.keep_fp32)
        return identity

    @abstractmethod
    def _export(self, model: ModelSpec, options: ExportOptions, out_dir: Path) -> tuple[str, dict[str, Any]]:
        """Write the artifact into ``out_dir``; return the main file's name and manifest extras."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, BatchRange):
        return asdict(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def artifact_batch(model: ModelSpec, options: ExportOptions) -> BatchRange:
    """The batch sizes the artifact accepts: the options' (validate() made them static where the
    format is), or the one an ONNX file fixed."""
    if model.fixed_batch is not None:
        return BatchRange(model.fixed_batch, model.fixed_batch, model.fixed_batch)
    return options.batch


def trace_batch(options: ExportOptions) -> int:
    """The batch to trace with: at least 2 for dynamic artifacts, so tracing does not specialise on 1."""
    return max(2, options.batch.opt) if options.batch.dynamic else options.batch.opt


def example_inputs(model: ModelSpec, batch: int, dtype: Any = None) -> Any:
    """A torch tensor of seeded example inputs for tracing and export."""
    import torch

    tensor = torch.from_numpy(example_batch(model.input, batch))
    return tensor.to(dtype) if dtype is not None else tensor
