"""TensorRT engines, built from the ONNX artifact with the TensorRT 10 builder.

FP32 (TF32 off), TF32, FP16 and BF16 come from builder flags; INT8 from entropy calibration
(``IInt8EntropyCalibrator2``, deprecated since TensorRT 10.1 and removed in 11, where this
exporter says so). The batch range becomes one optimisation profile, the workspace a memory
pool limit. Tactic timings persist in a timing cache file across builds. An engine runs only
under the TensorRT version and GPU architecture that built it, so the manifest records both.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from deploybench import registry
from deploybench.calibration import calibration_samples
from deploybench.env import has_cuda
from deploybench.errors import ExportError, UnsupportedError, UsageError
from deploybench.exporters.base import CalibratedOptions, Exporter, ExportOptions, artifact_batch
from deploybench.exporters.onnx import MIN_OPSET
from deploybench.files import write_bytes_atomic
from deploybench.models import ModelSpec
from deploybench.plugin_options import at_least
from deploybench.runtimes.tensorrt import PRECISIONS, compute_capability, engine_fingerprint, import_tensorrt
from deploybench.tf32 import refuse_tf32_where_overridden

log = logging.getLogger(__name__)

# Builder flags per precision. INT8 also allows FP16 so that layers without an INT8 kernel
# fall back to FP16 rather than FP32 (as trtexec --int8 --fp16 and Ultralytics do).
PRECISION_FLAGS: dict[str, tuple[str, ...]] = {
    "fp32": (),
    "tf32": ("TF32",),
    "fp16": ("FP16",),
    "bf16": ("BF16",),
    "int8": ("INT8", "FP16"),
}
assert tuple(PRECISION_FLAGS) == PRECISIONS  # the exporter and the runtime agree on precisions
TIMING_CACHE_NAME = "tensorrt-timing.cache"


@dataclass(frozen=True)
class TensorRTOptions(CalibratedOptions):
    workspace_gb: float = 4.0  # the builder's workspace limit
    opset: int | None = None  # of the intermediate ONNX export

    def check(self) -> None:
        super().check()
        if not self.workspace_gb > 0:
            raise UsageError(f"--workspace-gb {self.workspace_gb!r} must be more than 0")
        at_least("--opset", self.opset, MIN_OPSET)


class TensorRTExporter(Exporter):
    name = "tensorrt"
    aliases = ("trt",)
    suffix = ".engine"
    requires = ("tensorrt", "torch", "onnx", "onnxscript")
    extra = "tensorrt"
    devices = ("cuda",)
    precisions = PRECISIONS
    keep_fp32_precisions = ("fp16", "bf16", "int8")
    check_runtime = "tensorrt"
    static_per_batch = True  # kernels are chosen for the profile's opt shape
    Options = TensorRTOptions
    key_libraries = ("torch", "onnx", "onnxscript", "tensorrt")
    needs_module = False  # built from the ONNX artifact, which an ONNX file already is

    def validate(self, model: ModelSpec, options: ExportOptions) -> None:
        super().validate(model, options)
        if not has_cuda():
            raise UnsupportedError(
                "TensorRT builds engines on the GPU that will run them and torch sees no CUDA "
                "GPU here; export on a machine with an NVIDIA GPU and driver"
            )
        builder_flags(import_tensorrt(), options.precision)  # refuse what this TensorRT cannot build, before any work

    def cache_identity(self, options: ExportOptions) -> dict[str, Any]:
        # Engines are specific to the GPU architecture: one built elsewhere is a different entry.
        identity = {**super().cache_identity(options), "compute_capability": compute_capability()}
        if options.precision in ("fp16", "bf16", "int8"):
            # Built with TF32 cleared since it was limited to the tf32 precision; engines from
            # before allowed it in their FP32 layers, and this key leaves them behind.
            identity["tf32"] = False
        return identity

    def bind_cache(self, options: ExportOptions, cache_root: Path) -> ExportOptions:
        """Keep the timing cache beside the artifacts, in whichever cache folder is in use."""
        if options.timing_cache:
            return options
        return replace(options, timing_cache=str(cache_root / TIMING_CACHE_NAME))

    def _export(self, model: ModelSpec, options: ExportOptions, out_dir: Path) -> tuple[str, dict[str, Any]]:
        import_tensorrt()
        import tensorrt as trt

        cache_file = timing_cache_path(options)
        # The ONNX graph is an intermediate: built in a scratch folder that is gone before the
        # artifact's files are recorded, so the artifact's size is the engine's.
        with tempfile.TemporaryDirectory(prefix=".onnx-", dir=out_dir) as scratch:
            # Precision, and the layers kept in FP32, are the builder's job: the ONNX graph is plain FP32.
            onnx_options = replace(options, precision="fp32", device="cpu", keep_fp32=())
            onnx_artifact = registry.exporters.get("onnx")().export(model, onnx_options, Path(scratch))
            plan, build_info = build_engine(trt, onnx_artifact.file, model, options, cache_file)
        path = out_dir / "model.engine"
        write_bytes_atomic(path, plan)
        onnx_info = {k: onnx_artifact.manifest.get(k) for k in ("opset", "onnx_exporter", "checked_with")}
        return path.name, {**engine_fingerprint(), **build_info, "onnx": onnx_info}


def timing_cache_path(options: ExportOptions) -> Path:
    """The timing cache file: the option's, else ``tensorrt-timing.cache`` in the default cache folder."""
    if options.timing_cache:
        return Path(options.timing_cache).expanduser()
    from deploybench.cache import default_cache_dir

    return default_cache_dir() / TIMING_CACHE_NAME


def set_precision_flags(trt: Any, config: Any, precision: str) -> bool:
    """Set ``precision``'s builder flags on ``config``; return whether TF32 stays allowed.

    TensorRT allows TF32 by default. Only the tf32 precision keeps it: fp32 means IEEE FP32, like
    the PyTorch reference, and the layers an fp16, bf16 or int8 engine leaves in FP32 (--keep-fp32
    pins them there to repair accuracy) compute in IEEE FP32 too.
    """
    for flag in builder_flags(trt, precision):
        config.set_flag(flag)
    tf32 = precision == "tf32"
    if tf32:
        refuse_tf32_where_overridden("a TensorRT tf32 engine build")
    if not tf32 and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    return tf32


def builder_flags(trt: Any, precision: str) -> list[Any]:
    """The ``trt.BuilderFlag`` members for ``precision``, or why this TensorRT cannot build it."""
    names = PRECISION_FLAGS[precision]
    if precision == "int8" and not hasattr(trt, "IInt8EntropyCalibrator2"):
        raise UnsupportedError(
            f"TensorRT {trt.__version__} has removed implicit INT8 calibration "
            "(IInt8EntropyCalibrator2, deprecated since 10.1); it needs explicitly quantized "
            "(Q/DQ) ONNX graphs, which deploybench does not make yet: install tensorrt 10 "
            "(pip install 'tensorrt>=10,<11') for --precision int8"
        )
    missing = [name for name in names if not hasattr(trt.BuilderFlag, name)]
    if missing:
        raise UnsupportedError(
            f"TensorRT {trt.__version__} has no BuilderFlag.{missing[0]} (TensorRT 11 builds "
            f"strongly typed networks only); build {precision} engines with TensorRT 10 "
            "(pip install 'tensorrt>=10,<11') or use --precision fp32"
        )
    return [getattr(trt.BuilderFlag, name) for name in names]


def build_engine(
    trt: Any, onnx_file: Path, model: ModelSpec, options: ExportOptions, cache_file: Path
) -> tuple[memoryview, dict[str, Any]]:
    """Parse ``onnx_file``, configure the builder from ``options``, build; returns the plan and manifest extras."""
    logger = _python_logger(trt)  # must outlive the builder, network and parser
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode from TensorRT 10 on
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_file)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ExportError(
            f"TensorRT could not parse the ONNX graph of {model.name}: {errors[0] if errors else 'no detail given'}"
        )
    if network.num_inputs != 1:
        raise ExportError(
            f"{model.name}'s ONNX graph has {network.num_inputs} inputs; deploybench builds "
            "engines for models with one image input"
        )
    input_name = network.get_input(0).name

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_gb * (1 << 30)))
    tf32 = set_precision_flags(trt, config, options.precision)

    batch, chw = artifact_batch(model, options), tuple(model.input.shape)
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, min=(batch.min, *chw), opt=(batch.opt, *chw), max=(batch.max, *chw))
    config.add_optimization_profile(profile)
    info: dict[str, Any] = {
        "builder_flags": list(PRECISION_FLAGS[options.precision]),
        "tf32_allowed": tf32,
        "workspace_gb": options.workspace_gb,
        "profile": {"input": input_name, "min": batch.min, "opt": batch.opt, "max": batch.max},
    }

    calibrator = None  # referenced until the build ends: TensorRT calls back into it
    if options.precision == "int8":
        samples, origin = calibration_samples(model, options)
        # Calibration batches have the profile's opt shape. The explicit calibration profile
        # is deprecated in TensorRT 10 and reported to fail there (Ultralytics skips it too).
        calibrator = _entropy_calibrator(trt, samples, batch.opt)
        config.int8_calibrator = calibrator
        info.update(calibration=origin, calibration_samples=calibrator.used, calibrator="IInt8EntropyCalibrator2")

    if options.keep_fp32:
        info["kept_fp32"] = keep_layers_fp32(trt, network, config, options.keep_fp32)
    info["timing_cache_reused"] = _attach_timing_cache(config, cache_file)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        detail = logger.errors[-1] if logger.errors else "see the TensorRT log (run with -v)"
        raise ExportError(
            f"TensorRT could not build the {options.precision} engine for {model.name}: {detail}; "
            "if it mentions memory, raise --workspace-gb"
        )
    _save_timing_cache(config, cache_file)
    info["timing_cache"] = str(cache_file)
    return memoryview(plan), info  # no copy: engines of large models are hundreds of MB


def keep_layers_fp32(trt: Any, network: Any, config: Any, names: tuple[str, ...]) -> list[str]:
    """Pin the named layers (ONNX node names; the parser names layers after them) to FP32."""
    wanted, kept = set(names), []
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        if layer.name in wanted:
            layer.precision = trt.float32
            for output in range(layer.num_outputs):
                layer.set_output_type(output, trt.float32)
            kept.append(layer.name)
    missing = sorted(wanted - set(kept))
    if missing:
        raise ExportError(
            f"cannot keep {', '.join(missing[:3])} in FP32: the TensorRT network has no layer of that "
            "name; use the layer names deploybench triage prints"
        )
    # Without this flag TensorRT treats layer precisions as hints and may still pick FP16/INT8.
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    return kept


def _python_logger(trt: Any) -> Any:
    """A ``trt.ILogger`` that forwards to Python logging and keeps the errors for the exception message."""
    levels = {
        trt.ILogger.Severity.INTERNAL_ERROR: logging.CRITICAL,
        trt.ILogger.Severity.ERROR: logging.ERROR,
        trt.ILogger.Severity.WARNING: logging.WARNING,
        trt.ILogger.Severity.INFO: logging.INFO,
        trt.ILogger.Severity.VERBOSE: logging.DEBUG,
    }

    class PythonLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)  # TensorRT's bindings require the explicit base call
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            level = levels.get(severity, logging.DEBUG)
            if level >= logging.ERROR:
                self.errors.append(msg)
            log.log(level, "TensorRT: %s", msg)

    return PythonLogger()


def _entropy_calibrator(trt: Any, samples: np.ndarray, batch: int) -> Any:
    """An ``IInt8EntropyCalibrator2`` that feeds ``samples`` in batches of ``batch`` from one device buffer."""
    import torch

    if len(samples) == 0:
        raise ExportError("INT8 calibration got no samples: raise --calib-size or add images to --calib-data")
    if len(samples) < batch:
        # An engine built for one large batch calibrates on batches of that size: repeat the
        # samples to fill one (the histograms keep their shape; duplicates add no information).
        samples = samples[np.arange(batch) % len(samples)]
    usable = len(samples) // batch * batch
    samples = np.ascontiguousarray(samples[:usable], dtype=np.float32)

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.used = usable
            self._next = 0
            self._device = torch.empty((batch, *samples.shape[1:]), dtype=torch.float32, device="cuda")

        def get_batch_size(self) -> int:
            return batch

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self._next >= usable:
                return None  # no more batches: calibration ends
            self._device.copy_(torch.from_numpy(samples[self._next : self._next + batch]))
            torch.cuda.synchronize()  # TensorRT reads the buffer on its own stream
            self._next += batch
            return [int(self._device.data_ptr())]

        def read_calibration_cache(self) -> None:
            return None  # always calibrate: a cached table would be stale for other weights or data

        def write_calibration_cache(self, cache: Any) -> None:
            return None

    return EntropyCalibrator()


def _attach_timing_cache(config: Any, path: Path) -> bool:
    """Give the builder the timing cache at ``path``; True when earlier timings were reused."""
    data = b""
    if path.is_file():
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.warning("cannot read TensorRT timing cache %s (%s); starting a new one", path, exc.strerror)
    if data:
        try:
            cache = config.create_timing_cache(data)
        except (RuntimeError, TypeError, ValueError):  # a damaged file; the bindings raise RuntimeError
            cache = None
        if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
            return True
        # Written by another TensorRT version or GPU, or damaged: start afresh rather than mix timings.
        log.warning("TensorRT timing cache %s does not match this TensorRT/GPU; starting a new one", path)
    config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    return False


def _save_timing_cache(config: Any, path: Path) -> None:
    """Write the builder's timing cache atomically; a failure costs only future build time."""
    cache = config.get_timing_cache()
    if cache is None:
        return
    try:
        write_bytes_atomic(path, memoryview(cache.serialize()))
    except OSError as exc:
        log.warning("cannot save TensorRT timing cache to %s (%s)", path, exc.strerror)
