"""ONNX Runtime: CPU, CUDA and TensorRT execution providers, with IOBinding on the GPU.

Inputs are fed in the dtype the graph declares (a graph with float16 inputs takes float16;
deploybench's own FP16 export keeps float32 I/O), converted when the batch is prepared,
outside the timed region, as a deployment feeding that graph would. The CUDA provider is
created with ``use_tf32`` set from the precision, so fp32 means IEEE fp32 on Ampere and
later GPUs and ``tf32`` is a precision of its own; the TensorRT provider, which has no such
option, gets ``NVIDIA_TF32_OVERRIDE=0`` (see ``pin_tensorrt_tf32``). An FP16 graph is labelled
by what its nodes computed in its first run (``ort_profile``): ``fp16+fp32`` where the provider
ran some of them in fp32, as the CPU provider does for ops it has no fp16 kernel for.

The graph keeps its dynamic batch axis: fixing it at session creation
(``add_free_dimension_override_by_name``) measured no faster on the CPU (see README), so
there is no static variant to choose.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import MutableMapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from deploybench.artifact import Artifact
from deploybench.batch import Batch, arrays
from deploybench.errors import RuntimeLoadError, UnsupportedError, UsageError, first_line
from deploybench.plugin_options import PluginOptions, one_of
from deploybench.runtimes.base import Runtime, RuntimeOptions
from deploybench.runtimes.ort_profile import (
    computed_precision,
    enable_first_run_profile,
    node_placement,
    nodes_by_precision,
    read_profile,
)
from deploybench.tf32 import TF32_OVERRIDE, refuse_tf32_where_overridden

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
GRAPH_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
# ONNX tensor type strings (as InferenceSession reports them) -> the numpy dtype to feed.
FEED_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}


def provider_config(options: RuntimeOptions, available: list[str], artifact: Artifact | None = None) -> list[Any]:
    """The ``providers`` argument for ``InferenceSession``: the wanted provider with its options,
    then its fallbacks (see ``provider_chain``); refused when this ONNX Runtime lacks it."""
    wanted = PROVIDERS.get(options.provider or options.device)
    if wanted is None:
        raise UnsupportedError(f"unknown execution provider {options.provider!r}; choose from {', '.join(PROVIDERS)}")
    if wanted not in available:
        raise UnsupportedError(
            f"ONNX Runtime here offers {', '.join(available)}, not {wanted}; "
            "install onnxruntime-gpu (pip install 'deploybench[gpu]') for CUDA and TensorRT"
        )
    return provider_chain(wanted, options, artifact)


@dataclass(frozen=True)
class OrtOptions(PluginOptions):
    device: str = "cpu"
    provider: str | None = None  # cuda or tensorrt on --device cuda; None picks by device
    graph_optimization: str = "all"
    cuda_graphs: bool = False
    io_binding: bool = True

    def check(self) -> None:
        one_of("--ort-provider", self.provider, (None, *(name for name in PROVIDERS if name != "cpu")))
        one_of("graph optimisation level", self.graph_optimization, tuple(GRAPH_LEVELS))
        if self.cuda_graphs and not (self.device == "cuda" and self.io_binding):
            raise UsageError(
                "CUDA graphs need --device cuda with IOBinding (the graph replays fixed device "
                "buffers); drop --cuda-graphs or run on cuda"
            )
        if self.cuda_graphs and self.provider == "tensorrt":
            raise UsageError(
                "--cuda-graphs captures the CUDA provider's graph, and with --ort-provider tensorrt "
                "TensorRT runs the nodes; drop one of the two"
            )


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    aliases = ("ort",)
    formats = ("onnx",)
    devices = ("cpu", "cuda")
    precisions = ("fp32", "tf32", "fp16")
    cuda_only_precisions = ("tf32",)
    requires = ("onnxruntime",)
    extra = "onnx"
    timed_region = "CPU: session.run on host arrays, outputs returned to host"
    Options = OrtOptions

    def __init__(self, options: RuntimeOptions | None = None) -> None:
        super().__init__(options)
        self._session: Any = None  # ort.InferenceSession, made at load
        self._binding: Any = None  # IOBinding on a GPU
        self._graph: GraphBuffers | None = None  # fixed buffers a captured CUDA graph replays
        self._inputs: list[str] = []
        self._feed_dtypes: list[Any] = []
        self._output_names: list[str] = []
        self._on_device = False
        self._result: list[np.ndarray] = []
        self._first_run_reads: frozenset[str] = frozenset()  # what the first run's profile is read for
        self._profile_dir: tempfile.TemporaryDirectory[str] | None = None  # where that profile is written

    def _load(self, artifact: Artifact) -> None:
        import onnxruntime as ort

        OrtOptions.pick(self.options)  # a runtime built without a sweep is checked here
        level = self.options.graph_optimization
        session_options = self._session_options(ort, artifact)
        providers = provider_config(self.options, ort.get_available_providers(), artifact)
        self._first_run_reads = self._profile_first_run(session_options, artifact)
        if providers and providers[0][0] == PROVIDERS["tensorrt"]:
            pin_tensorrt_tf32(self.options.precision)
        elif self.options.precision == "tf32":  # the override beats the CUDA provider's use_tf32 too
            refuse_tf32_where_overridden("an ONNX Runtime CUDA tf32 session")
        try:
            self._session = ort.InferenceSession(str(artifact.file), session_options, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf types
            raise RuntimeLoadError(
                f"{artifact.file.name} could not be loaded by ONNX Runtime ({first_line(exc)}); export it again"
            ) from exc
        graph_inputs = self._session.get_inputs()
        for graph_input in graph_inputs:
            if graph_input.type not in FEED_DTYPES:
                raise RuntimeLoadError(
                    f"input {graph_input.name!r} has type {graph_input.type}, which deploybench "
                    f"cannot feed; supported: {', '.join(FEED_DTYPES)}"
                )
        self._inputs = [i.name for i in graph_inputs]
        self._feed_dtypes = [FEED_DTYPES[i.type] for i in graph_inputs]
        self._output_names = [o.name for o in self._session.get_outputs()]
        self._on_device = self.options.device == "cuda" and self.options.io_binding
        precision = "tf32" if self.options.precision == "tf32" else artifact.precision
        batch_axis = graph_inputs[0].shape[0] if graph_inputs[0].shape else None
        self.info.update(
            threads=self._session.get_session_options().intra_op_num_threads,  # what the session holds
            graph_optimization=level,
            providers=self._session.get_providers(),
            provider_options={
                name: opts
                for name, opts in self._session.get_provider_options().items()
                if name != "CPUExecutionProvider"
            },
            precision_used=precision,
            input_dtype=np.dtype(self._feed_dtypes[0]).name,
            batch_shape="static" if isinstance(batch_axis, int) else "dynamic",
            io_binding=self._on_device,
            onnxruntime=ort.__version__,
        )
        if self._on_device:
            self._binding = self._session.io_binding()
            self.timed_region = "CUDA: IOBinding with inputs and outputs in device memory; run_with_iobinding"
        elif self.options.device != "cpu":  # the provider copies host arrays in and out on every run
            self.timed_region = (
                f"{self.options.device.upper()}: session.run on host arrays, copied to the device and back"
            )
        self._graph = None
        if self._on_device and self.options.cuda_graphs:
            if len(self._inputs) != 1:
                raise UnsupportedError(
                    f"CUDA graphs here replay one input and {artifact.file.name} takes "
                    f"{len(self._inputs)}; run without --cuda-graphs"
                )
            self._graph = GraphBuffers(ort, self._session, self._binding)
            self.timed_region = (
                "CUDA graph replay: inputs copied into fixed device buffers outside the timed "
                "region, outputs left in device memory; run_with_iobinding"
            )
        self.info["cuda_graphs"] = self._graph is not None

    def _profile_first_run(self, session_options: Any, artifact: Artifact) -> frozenset[str]:
        """Profile the first run where the row needs what it shows (``ort_profile``), and say for
        what: ``placement`` on a GPU provider (the nodes left on the CPU), ``precision`` for a
        graph below fp32 (which nodes computed in it).

        Not with CUDA graphs: ONNX Runtime refuses to capture a graph unless every node is on CUDA.
        """
        if self.options.cuda_graphs:
            return frozenset()
        reads = set()
        if PROVIDERS.get(self.options.provider or self.options.device) != "CPUExecutionProvider":
            reads.add("placement")
        if artifact.precision != "fp32" and self.options.precision != "tf32":
            reads.add("precision")
        if reads:
            self._profile_dir = tempfile.TemporaryDirectory(prefix="deploybench-ort-profile-")
            enable_first_run_profile(session_options, Path(self._profile_dir.name))
        return frozenset(reads)

    def _read_first_run(self, feeds: Any) -> None:
        """Run the first prepared batch once, untimed, and record what its profile shows: where
        each node ran (GPU providers) and, below fp32, the precision the nodes really computed in."""
        reads, self._first_run_reads = self._first_run_reads, frozenset()
        if not reads:
            return
        self.infer(feeds)
        self.synchronize()
        events = read_profile(self._session)
        if self._profile_dir is not None:
            self._profile_dir.cleanup()
        if "placement" in reads:
            self.info["node_placement"] = node_placement(events).to_dict()
        if "precision" in reads:
            counts = nodes_by_precision(events)
            self.info["nodes_by_precision"] = counts
            self.info["precision_used"] = computed_precision(str(self.info["precision_used"]), counts)

    def _session_options(self, ort: Any, artifact: Artifact) -> Any:
        """Threads (intra-op; one inter-op) and the graph optimisation level."""
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = self.options.resolved_threads()
        session_options.inter_op_num_threads = 1
        level = self.options.graph_optimization  # OrtOptions checked it
        session_options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_LEVELS[level])
        return session_options

    def _unload(self) -> None:
        self._session = self._binding = self._graph = None
        if self._profile_dir is not None:  # a load that failed before its first run
            self._profile_dir.cleanup()
            self._profile_dir = None

    def prepare(self, batch: Batch) -> Any:
        parts = arrays(batch)
        if len(parts) != len(self._inputs):
            raise UnsupportedError(
                f"the model takes {len(self._inputs)} inputs ({', '.join(self._inputs)}), and {len(parts)} were given"
            )
        host = [np.ascontiguousarray(part, dtype=dtype) for part, dtype in zip(parts, self._feed_dtypes)]
        if not self._on_device:
            feeds = dict(zip(self._inputs, host))
            self._read_first_run(feeds)
            return feeds
        if self._graph is not None:
            return self._graph.feed(host[0])
        import onnxruntime as ort

        values = [ort.OrtValue.ortvalue_from_numpy(part, "cuda", 0) for part in host]
        for name, value in zip(self._inputs, values):
            self._binding.bind_ortvalue_input(name, value)
        for name in self._output_names:
            self._binding.bind_output(name, "cuda", 0)
        self._read_first_run(values)
        return values  # keep the device buffers alive while they are bound

    def infer(self, feeds: Any) -> None:
        if self._on_device:
            self._session.run_with_iobinding(self._binding)
        else:
            self._result = self._session.run(None, feeds)

    def synchronize(self) -> None:
        if self._on_device:
            self._binding.synchronize_outputs()

    def outputs(self) -> list[np.ndarray]:
        if self._on_device:
            return [np.asarray(o, dtype=np.float32) for o in self._binding.copy_outputs_to_cpu()]
        return [np.asarray(o, dtype=np.float32) for o in self._result]


# -- GPU providers: options, CUDA graph buffers ---------------------------------------

# Engines the TensorRT execution provider builds, kept in deploybench's cache folder: one folder per
# artifact (engines belong to one graph), and one timing cache shared by every build, as trtexec shares one.
ORT_TENSORRT_CACHE = "onnxruntime-tensorrt"


def tensorrt_cache_dir(artifact: Artifact | None, precision: str = "fp32") -> Path:
    """Where the TensorRT provider keeps its engines for ``artifact``: beside the artifact, in the
    cache, in a folder per TF32 setting. TF32 is fixed when an engine is built and the provider
    names its engine files without it, so a tf32 engine would otherwise serve fp32 rows, or the
    reverse."""
    from deploybench.cache import default_cache_dir

    if artifact is not None and artifact.path is not None:
        folder = artifact.path.parent / ORT_TENSORRT_CACHE / artifact.path.name
    else:
        folder = default_cache_dir() / ORT_TENSORRT_CACHE / "modules"
    return folder / ("tf32" if precision == "tf32" else "no-tf32")


_tensorrt_tf32: bool | None = None  # whether this process's TensorRT-provider sessions allow TF32, once one exists


def pin_tensorrt_tf32(precision: str, environ: MutableMapping[str, str] = os.environ) -> None:
    """Allow TF32 in the TensorRT provider for the tf32 precision only; call before its session.

    The provider has no ``use_tf32`` option, and TensorRT allows TF32 by default. NVIDIA's
    ``NVIDIA_TF32_OVERRIDE=0`` is the only way to turn it off, and once a session has been made
    it holds for the whole process (onnxruntime#26029). So fp32 and fp16 set it to 0 (fp32 is
    IEEE FP32, and the layers an fp16 engine leaves in FP32 are too, as in deploybench's own
    TensorRT engines), tf32 refuses to run where it is 0, and a process whose sessions already
    fixed one setting refuses the other: each (runtime, precision) gets a worker of its own
    unless ``--no-isolate``.
    """
    global _tensorrt_tf32
    tf32 = precision == "tf32"
    if _tensorrt_tf32 is not None and _tensorrt_tf32 != tf32:
        raise UnsupportedError(
            f"this process already made a TensorRT-provider session with TF32 {'on' if _tensorrt_tf32 else 'off'}, "
            f"and {TF32_OVERRIDE} holds for the whole process; run {precision} in a worker of its own "
            "(drop --no-isolate)"
        )
    if tf32:
        refuse_tf32_where_overridden("an ONNX Runtime TensorRT tf32 session", environ)
    else:
        environ[TF32_OVERRIDE] = "0"
    _tensorrt_tf32 = tf32


def tensorrt_provider_options(precision: str, engine_dir: Path, timing_dir: Path) -> dict[str, Any]:
    """TensorRT provider options: engines in ``engine_dir``, the timing cache in ``timing_dir``, FP16 for fp16 rows.

    TF32 is not among them: the provider has no option for it (``pin_tensorrt_tf32``). INT8 in the
    provider needs a calibration table of its own, which deploybench does not write, so int8 is
    not offered.
    """
    return {
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(engine_dir),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(timing_dir),  # shared across artifacts, like trtexec's --timingCacheFile
        "trt_fp16_enable": precision == "fp16",
    }


def cuda_provider_options(options: RuntimeOptions) -> dict[str, str]:
    """CUDA provider options: ``use_tf32`` is ``1`` only for the ``tf32`` precision (ONNX Runtime
    turns TF32 on by default, so fp32 would silently be TF32), and CUDA graphs when asked."""
    settings = {"use_tf32": "1" if options.precision == "tf32" else "0"}
    if options.cuda_graphs:
        settings["enable_cuda_graph"] = "1"
    return settings


def provider_chain(wanted: str, options: RuntimeOptions, artifact: Artifact | None) -> list[Any]:
    """The ``providers`` list for a session: the wanted provider with its options, then its fallbacks.

    TensorRT falls back to CUDA for the subgraphs it cannot take, then to the CPU (ONNX Runtime's
    documented order); CUDA falls back to the CPU.
    """
    cuda = ("CUDAExecutionProvider", cuda_provider_options(options))
    if wanted == "TensorrtExecutionProvider":
        engine_dir = tensorrt_cache_dir(artifact, options.precision)
        engine_dir.mkdir(parents=True, exist_ok=True)
        timing_dir = engine_dir.parent.parent  # the provider's cache folder, one for every artifact
        # The CUDA fallback runs only what TensorRT leaves, so it never captures a graph: ONNX
        # Runtime refuses capture unless every node is on CUDA (``--cuda-graphs`` is refused here).
        fallback = ("CUDAExecutionProvider", cuda_provider_options(replace(options, cuda_graphs=False)))
        trt = tensorrt_provider_options(options.precision, engine_dir, timing_dir)
        return [(wanted, trt), fallback, "CPUExecutionProvider"]
    if wanted == "CUDAExecutionProvider":
        return [cuda, "CPUExecutionProvider"]
    return [wanted]


# ONNX tensor type strings -> numpy dtypes, for output buffers allocated before the first run.
ORT_DTYPES = {**FEED_DTYPES, "tensor(bool)": np.bool_}


def fixed_output_shape(name: str, dims: list[Any], batch: int) -> tuple[int, ...]:
    """An output's shape at ``batch``: the leading symbolic dimension is the batch, any other must be fixed."""
    shape = []
    for index, dim in enumerate(dims):
        if isinstance(dim, int) and dim > 0:
            shape.append(dim)
        elif index == 0:
            shape.append(batch)
        else:
            raise UnsupportedError(
                f"output {name!r} has the dynamic dimension {dim!r}; CUDA graphs replay into "
                "buffers allocated before the first run: run without --cuda-graphs"
            )
    return tuple(shape)


class GraphBuffers:
    """Input and output buffers that stay at one device address, as a replayed CUDA graph needs.

    The first batch allocates them and binds them once; every later batch is copied into the
    bound input (``OrtValue.update_inplace``), because a graph replays the addresses it captured
    and would never see a freshly bound buffer.
    """

    def __init__(self, ort: Any, session: Any, binding: Any, device_id: int = 0) -> None:
        self._ort, self._session, self._binding, self._device_id = ort, session, binding, device_id
        self._input_name = session.get_inputs()[0].name
        self.input: Any = None
        self.outputs: list[Any] = []

    def feed(self, batch: np.ndarray) -> Any:
        batch = np.ascontiguousarray(batch)
        if self.input is None:
            self._allocate(batch)
        elif tuple(self.input.shape()) != batch.shape:
            raise UnsupportedError(
                f"a captured CUDA graph replays shape {tuple(self.input.shape())}, not "
                f"{batch.shape}; measure each batch size in its own session"
            )
        else:
            self.input.update_inplace(batch)
        return self.input

    def _allocate(self, batch: np.ndarray) -> None:
        ort, binding = self._ort, self._binding
        self.input = ort.OrtValue.ortvalue_from_numpy(batch, "cuda", self._device_id)
        binding.bind_ortvalue_input(self._input_name, self.input)
        for output in self._session.get_outputs():
            dtype = ORT_DTYPES.get(output.type)
            if dtype is None:
                raise UnsupportedError(
                    f"output {output.name!r} has type {output.type}, which deploybench cannot "
                    "allocate for a CUDA graph; run without --cuda-graphs"
                )
            shape = fixed_output_shape(output.name, list(output.shape), batch.shape[0])
            value = ort.OrtValue.ortvalue_from_shape_and_type(shape, dtype, "cuda", self._device_id)
            binding.bind_ortvalue_output(output.name, value)
            self.outputs.append(value)
