"""TensorRT: run a serialized engine with device-resident buffers on a dedicated CUDA stream.

Buffers are torch CUDA tensors (torch is always installed), so no pycuda or cuda-python is
needed. An engine only runs under the TensorRT version and on the GPU architecture that built
it; the exporter records both in the manifest and ``load`` refuses an engine from elsewhere.
Written against the TensorRT 10 Python API (name-based tensors, ``execute_async_v3``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from deploybench.artifact import Artifact
from deploybench.batch import Batch, single
from deploybench.errors import DeployBenchError, RuntimeLoadError, UnsupportedError
from deploybench.runtimes.base import Runtime, RuntimeOptions
from deploybench.tf32 import refuse_tf32_where_overridden

if TYPE_CHECKING:  # checked against tensorrt-stubs (make lint); imported at load time
    import tensorrt as trt

PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "int8")
# TensorRT DataType member name -> torch dtype name, for the IO tensors deploybench allocates.
TORCH_DTYPES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
}
# Manifest keys an engine is bound to, and how to name them in messages.
ENGINE_BINDINGS = {"tensorrt": "TensorRT", "compute_capability": "GPU compute capability"}


def import_tensorrt() -> ModuleType:
    """The ``tensorrt`` module, or a clear error when it is installed but its libraries do not load.

    Callers import it again by name (``import tensorrt as trt``) after this check, so the type
    checker sees the module's stubs rather than a ``ModuleType``.
    """
    try:
        import tensorrt
    except (ImportError, OSError) as exc:  # e.g. libnvinfer missing or built for another CUDA
        raise UnsupportedError(
            f"tensorrt is installed but does not import ({exc}); reinstall it for this "
            "machine's CUDA: pip install --force-reinstall 'deploybench[tensorrt]'"
        ) from exc
    return tensorrt


def compute_capability() -> str | None:
    """``major.minor`` of the current CUDA device, or None without one."""
    import torch

    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability()
    return f"{major}.{minor}"


def engine_fingerprint() -> dict[str, Any]:
    """What a TensorRT engine is tied to on this machine (recorded at build, checked at load)."""
    import torch

    return {
        "tensorrt": import_tensorrt().__version__,
        "compute_capability": compute_capability(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def foreign_engine_problem(manifest: dict[str, Any], here: dict[str, Any]) -> str | None:
    """Why an engine built as ``manifest`` says cannot run ``here``, or None if it can."""
    for key, what in ENGINE_BINDINGS.items():
        built = manifest.get(key)
        if built is not None and built != here.get(key):
            return (
                f"was built with {what} {built} and this machine has {here.get(key)}; TensorRT engines do not "
                "move between TensorRT versions or GPU architectures: rebuild it here "
                "(deploybench export MODEL --to trt --device cuda --force)"
            )
    return None


@dataclass
class _Bindings:
    """Device tensors bound to the execution context; held so their memory stays valid."""

    input: Any
    outputs: list[Any]


class TensorRTRuntime(Runtime):
    name = "tensorrt"
    aliases = ("trt",)
    formats = ("tensorrt",)
    devices = ("cuda",)
    precisions = PRECISIONS
    requires = ("tensorrt", "torch")
    extra = "tensorrt"
    timed_region = (
        "device-resident inputs and outputs (torch CUDA tensors); "
        "execute_async_v3 on a dedicated CUDA stream + stream synchronize"
    )

    def __init__(self, options: RuntimeOptions | None = None) -> None:
        super().__init__(options)
        # Made by _load and released by _unload in reverse order: each needs the one before.
        self._logger: trt.ILogger | None = None  # must outlive every object made through it
        self._trt_runtime: trt.Runtime | None = None
        self._engine: trt.ICudaEngine | None = None
        self._context: trt.IExecutionContext | None = None
        self._stream: Any = None  # a torch.cuda.Stream
        self._bound: _Bindings | None = None
        self._input = ""
        self._outputs: list[str] = []
        self._dtypes: dict[str, Any] = {}  # tensor name -> torch dtype
        self._batch_range = (0, 0, 0)  # optimisation profile 0: min, opt, max

    def _load(self, artifact: Artifact) -> None:
        import torch

        if artifact.manifest.get("tf32_allowed") or "TF32" in (artifact.manifest.get("builder_flags") or ()):
            # Built to use TF32: under the override some of its layers would run without it, unseen.
            refuse_tf32_where_overridden(f"the TensorRT tf32 engine {artifact.file.name}")
        import_tensorrt()
        import tensorrt as trt

        if not torch.cuda.is_available():
            raise RuntimeLoadError(
                "TensorRT runs engines on a CUDA GPU and torch sees none here; "
                "run on a machine with an NVIDIA GPU and driver"
            )
        here = engine_fingerprint()
        problem = foreign_engine_problem(artifact.manifest, here)
        if problem:
            raise RuntimeLoadError(f"{artifact.file.name} {problem}")
        plan = artifact.file.read_bytes()
        # TensorRT allocates the weights and the context's activation memory itself, outside
        # torch's allocator; the drop in free device memory across loading measures both.
        free_before = torch.cuda.mem_get_info()[0]
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._trt_runtime = trt.Runtime(self._logger)
        engine = self._engine = self._trt_runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise RuntimeLoadError(
                f"TensorRT {trt.__version__} could not deserialize {artifact.file.name} "
                "(see its message above); rebuild it with --force"
            )
        self._context = engine.create_execution_context()
        if self._context is None:
            raise RuntimeLoadError(
                f"TensorRT could not create an execution context for {artifact.file.name}; the GPU may be out of memory"
            )
        trt_bytes = max(free_before - torch.cuda.mem_get_info()[0], _activation_bytes(engine))
        self._stream = torch.cuda.Stream()
        self._describe_io(engine, trt, torch)
        # What the builder was allowed to use (INT8 engines also allow FP16 for layers without INT8 kernels).
        flags = [flag.lower() for flag in artifact.manifest.get("builder_flags") or ()]
        self.info.update(
            tensorrt=trt.__version__,
            precision_used="+".join(flags) or "fp32",
            builder_flags=artifact.manifest.get("builder_flags"),
            profile_batch=dict(zip(("min", "opt", "max"), self._batch_range)),
            batch_shape="static" if self._batch_range[0] == self._batch_range[2] else "dynamic",
            engine_device_mb=round(trt_bytes / 2**20, 1),
            compute_capability=here["compute_capability"],
            gpu=here["gpu"],
            stream="dedicated torch.cuda.Stream",
        )

    def _describe_io(self, engine: trt.ICudaEngine, trt: ModuleType, torch: ModuleType) -> None:
        """Input/output names, their torch dtypes, and the batch range of optimisation profile 0."""
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1:
            raise RuntimeLoadError(
                f"the engine has {len(inputs)} inputs ({', '.join(inputs)}); "
                "deploybench feeds models with one image input"
            )
        self._input = inputs[0]
        self._outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self._dtypes = {}
        for name in names:
            kind = engine.get_tensor_dtype(name).name
            if kind not in TORCH_DTYPES:
                raise RuntimeLoadError(
                    f"tensor {name!r} has TensorRT type {kind}, which deploybench cannot "
                    f"allocate; supported: {', '.join(TORCH_DTYPES)}"
                )
            self._dtypes[name] = getattr(torch, TORCH_DTYPES[kind])
        low, opt, high = engine.get_tensor_profile_shape(self._input, 0)
        self._batch_range = (int(low[0]), int(opt[0]), int(high[0]))

    def _unload(self) -> None:
        # Context before engine before runtime: each depends on the next.
        self._bound = None
        self._context = None
        self._engine = None
        self._trt_runtime = None
        self._logger = None

    def _loaded_context(self) -> trt.IExecutionContext:
        if self._context is None:
            raise RuntimeLoadError("the TensorRT engine is not loaded; load() it first")
        return self._context

    def prepare(self, batch: Batch) -> _Bindings:
        import torch

        batch = single(batch, self.name)
        low, _, high = self._batch_range
        if not low <= batch.shape[0] <= high:
            raise UnsupportedError(
                f"this engine accepts batch {low} to {high}, not {batch.shape[0]}; "
                f"export it again with --batch covering {batch.shape[0]}"
            )
        # Copy and allocate on the engine's stream, so the copy is ordered before execution
        # and torch's caching allocator ties the blocks to that stream.
        context = self._loaded_context()
        with torch.cuda.stream(self._stream):
            host = torch.from_numpy(np.ascontiguousarray(batch))
            device_input = host.to(device="cuda", dtype=self._dtypes[self._input])
            if not context.set_input_shape(self._input, tuple(device_input.shape)):
                raise UnsupportedError(f"TensorRT refused input shape {tuple(device_input.shape)} for {self._input!r}")
            outputs = []
            for name in self._outputs:
                dims = context.get_tensor_shape(name)
                shape = tuple(dims[i] for i in range(len(dims)))
                if any(dim < 0 for dim in shape):
                    raise UnsupportedError(
                        f"output {name!r} has a data-dependent shape {shape}; "
                        "deploybench allocates outputs before running"
                    )
                outputs.append(torch.empty(shape, dtype=self._dtypes[name], device="cuda"))
        bindings = _Bindings(device_input, outputs)
        self._bind(bindings)
        return bindings

    def _bind(self, bindings: _Bindings) -> None:
        context = self._loaded_context()
        context.set_input_shape(self._input, tuple(bindings.input.shape))
        context.set_tensor_address(self._input, bindings.input.data_ptr())
        for name, tensor in zip(self._outputs, bindings.outputs):
            context.set_tensor_address(name, tensor.data_ptr())
        self._bound = bindings

    def infer(self, feeds: _Bindings) -> None:
        if feeds is not self._bound:  # another prepared batch was bound since
            self._bind(feeds)
        if not self._loaded_context().execute_async_v3(self._stream.cuda_stream):
            raise DeployBenchError("TensorRT execute_async_v3 failed (see TensorRT's message above)")

    def synchronize(self) -> None:
        self._stream.synchronize()

    def cuda_stream(self) -> Any:
        return self._stream

    def outputs(self) -> list[np.ndarray]:
        if self._bound is None:
            return []
        self._stream.synchronize()  # the copies below run on the default stream
        return [tensor.float().cpu().numpy() for tensor in self._bound.outputs]

    def cross_check(
        self, input_shape: tuple[int, ...], median_ms: float, device_median_ms: float | None
    ) -> dict[str, Any] | None:
        """``trtexec --loadEngine`` on this engine at this shape, where trtexec is on PATH."""
        from deploybench.trtexec import cross_check

        assert self.artifact is not None
        found = cross_check(self.artifact.file, self._input, input_shape, median_ms, device_median_ms)
        return found.to_dict() if found is not None else None


def _activation_bytes(engine: Any) -> int:
    """Device memory an execution context needs (``device_memory_size_v2`` from TensorRT 10.1)."""
    for attribute in ("device_memory_size_v2", "device_memory_size"):
        value = getattr(engine, attribute, None)
        if value is not None:
            return int(value)
    return 0
