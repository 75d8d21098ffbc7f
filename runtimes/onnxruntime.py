"""ONNX Runtime: CPU, CUDA and TensorRT execution providers, with IOBinding on the GPU.

Inputs are fed in the dtype the graph declares (an FP16 graph takes float16), converted
when the batch is prepared, outside the timed region, as a deployment feeding that graph
would. The CUDA provider is created with ``use_tf32`` set from the precision, so fp32 means
IEEE fp32 on Ampere and later GPUs and ``tf32`` is a precision of its own.

The graph keeps its dynamic batch axis: fixing it at session creation
(``add_free_dimension_override_by_name``) measured no faster on the CPU (see README), so
there is no static variant to choose.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deploybench.artifact import Artifact
from deploybench.batch import Batch, arrays
from deploybench.errors import RuntimeLoadError, UnsupportedError, first_line
from deploybench.runtimes.base import Runtime, RuntimeOptions

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
GRAPH_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
                "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}
# ONNX tensor type strings (as InferenceSession reports them) -> the numpy dtype to feed.
FEED_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
               "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(int32)": np.int32, "tensor(int64)": np.int64}


def provider_config(options: RuntimeOptions, available: list[str]) -> list[Any]:
    """The ``providers`` argument for ``InferenceSession``: the wanted provider with its options.

    CUDA: ``use_tf32`` is ``1`` only for the ``tf32`` precision (ONNX Runtime turns TF32 on by
    default), and CUDA graphs when asked. The CPU provider follows as the fallback.
    """
    wanted = PROVIDERS.get(options.provider or options.device)
    if wanted is None:
        raise UnsupportedError(f"unknown execution provider {options.provider!r}; choose from {', '.join(PROVIDERS)}")
    if wanted not in available:
        raise UnsupportedError(f"ONNX Runtime here offers {', '.join(available)}, not {wanted}; "
                               "install onnxruntime-gpu (pip install 'deploybench[gpu]') for CUDA and TensorRT")
    if wanted == "CPUExecutionProvider":
        return [wanted]
    settings: dict[str, str] = {}
    if wanted == "CUDAExecutionProvider":
        settings["use_tf32"] = "1" if options.precision == "tf32" else "0"
        if options.cuda_graphs:
            settings["enable_cuda_graph"] = "1"
    return [(wanted, settings), "CPUExecutionProvider"]


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

    def _load(self, artifact: Artifact) -> None:
        import onnxruntime as ort

        threads, level = self.options.resolved_threads(), self.options.graph_optimization
        session_options = self._session_options(ort, artifact)
        providers = provider_config(self.options, ort.get_available_providers())
        try:
            self._session = ort.InferenceSession(str(artifact.file), session_options, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf types
            raise RuntimeLoadError(f"{artifact.file.name} could not be loaded by ONNX Runtime ({first_line(exc)}); export it again") from exc
        graph_inputs = self._session.get_inputs()
        for graph_input in graph_inputs:
            if graph_input.type not in FEED_DTYPES:
                raise RuntimeLoadError(f"input {graph_input.name!r} has type {graph_input.type}, which deploybench "
                                       f"cannot feed; supported: {', '.join(FEED_DTYPES)}")
        self._inputs = [i.name for i in graph_inputs]
        self._feed_dtypes = [FEED_DTYPES[i.type] for i in graph_inputs]
        self._output_names = [o.name for o in self._session.get_outputs()]
        self._on_device = self.options.device == "cuda" and self.options.io_binding
        self._result: list[np.ndarray] = []
        precision = "tf32" if self.options.precision == "tf32" else artifact.precision
        batch_axis = graph_inputs[0].shape[0] if graph_inputs[0].shape else None
        self.info.update(threads=threads, graph_optimization=level, providers=self._session.get_providers(),
                         provider_options={name: opts for name, opts in self._session.get_provider_options().items()
                                           if name != "CPUExecutionProvider"},
                         precision_used=precision, input_dtype=np.dtype(self._feed_dtypes[0]).name,
                         batch_shape="static" if isinstance(batch_axis, int) else "dynamic",
                         io_binding=self._on_device, onnxruntime=ort.__version__)
        if self._on_device:
            self._binding = self._session.io_binding()
            self.timed_region = "CUDA: IOBinding with inputs and outputs in device memory; run_with_iobinding"
        elif self.options.device != "cpu":  # the provider copies host arrays in and out on every run
            self.timed_region = f"{self.options.device.upper()}: session.run on host arrays, copied to the device and back"

    def _session_options(self, ort: Any, artifact: Artifact) -> Any:
        """Threads (intra-op; one inter-op) and the graph optimisation level."""
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = self.options.resolved_threads()
        session_options.inter_op_num_threads = 1
        level = self.options.graph_optimization
        if level not in GRAPH_LEVELS:
            raise UnsupportedError(f"unknown graph optimisation level {level!r}; choose from {', '.join(GRAPH_LEVELS)}")
        session_options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_LEVELS[level])
        return session_options

    def _unload(self) -> None:
        self._session = self._binding = None

    def prepare(self, batch: Batch) -> Any:
        parts = arrays(batch)
        if len(parts) != len(self._inputs):
            raise UnsupportedError(f"the model takes {len(self._inputs)} inputs ({', '.join(self._inputs)}), "
                                   f"and {len(parts)} were given")
        host = [np.ascontiguousarray(part, dtype=dtype) for part, dtype in zip(parts, self._feed_dtypes)]
        if not self._on_device:
            return dict(zip(self._inputs, host))
        import onnxruntime as ort

        values = [ort.OrtValue.ortvalue_from_numpy(part, "cuda", 0) for part in host]
        for name, value in zip(self._inputs, values):
            self._binding.bind_ortvalue_input(name, value)
        for name in self._output_names:
            self._binding.bind_output(name, "cuda", 0)
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
