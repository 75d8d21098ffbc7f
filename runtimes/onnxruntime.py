"""ONNX Runtime: CPU, CUDA and TensorRT execution providers, with IOBinding on the GPU."""

from __future__ import annotations

from typing import Any

import numpy as np

from deploybench.artifact import Artifact
from deploybench.batch import Batch, arrays
from deploybench.errors import RuntimeLoadError, UnsupportedError, first_line
from deploybench.runtimes.base import Runtime

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
GRAPH_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
                "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    aliases = ("ort",)
    formats = ("onnx",)
    devices = ("cpu", "cuda")
    precisions = ("fp32", "fp16")
    requires = ("onnxruntime",)
    extra = "onnx"
    timed_region = "CPU: session.run on host arrays, outputs returned to host"

    def _load(self, artifact: Artifact) -> None:
        import onnxruntime as ort

        threads = self.options.resolved_threads()
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = threads
        session_options.inter_op_num_threads = 1
        level = self.options.graph_optimization
        if level not in GRAPH_LEVELS:
            raise UnsupportedError(f"unknown graph optimisation level {level!r}; choose from {', '.join(GRAPH_LEVELS)}")
        session_options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_LEVELS[level])
        providers = self._providers(ort.get_available_providers())
        try:
            self._session = ort.InferenceSession(str(artifact.file), session_options, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf types
            raise RuntimeLoadError(f"{artifact.file.name} could not be loaded by ONNX Runtime ({first_line(exc)}); export it again") from exc
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._output_names = [o.name for o in self._session.get_outputs()]
        self._on_device = self.options.device == "cuda" and self.options.io_binding
        self._result: list[np.ndarray] = []
        self.info.update(threads=threads, graph_optimization=level, providers=self._session.get_providers(),
                         precision_used=artifact.precision, io_binding=self._on_device, onnxruntime=ort.__version__)
        if self._on_device:
            self._binding = self._session.io_binding()
            self.timed_region = "CUDA: IOBinding with inputs and outputs in device memory; run_with_iobinding"
        elif self.options.device != "cpu":  # the provider copies host arrays in and out on every run
            self.timed_region = f"{self.options.device.upper()}: session.run on host arrays, copied to the device and back"

    def _providers(self, available: list[str]) -> list[Any]:
        wanted = PROVIDERS.get(self.options.provider or self.options.device)
        if wanted is None:
            raise UnsupportedError(f"unknown execution provider {self.options.provider!r}; choose from {', '.join(PROVIDERS)}")
        if wanted not in available:
            raise UnsupportedError(f"ONNX Runtime here offers {', '.join(available)}, not {wanted}; "
                                   "install onnxruntime-gpu (pip install 'deploybench[gpu]') for CUDA and TensorRT")
        if wanted == "CUDAExecutionProvider" and self.options.cuda_graphs:
            return [(wanted, {"enable_cuda_graph": "1"}), "CPUExecutionProvider"]
        return [wanted, "CPUExecutionProvider"] if wanted != "CPUExecutionProvider" else [wanted]

    def _unload(self) -> None:
        self._session = self._binding = None

    def prepare(self, batch: Batch) -> Any:
        parts = arrays(batch)
        if len(parts) != len(self._inputs):
            raise UnsupportedError(f"the model takes {len(self._inputs)} inputs ({', '.join(self._inputs)}), "
                                   f"and {len(parts)} were given")
        if not self._on_device:
            return {name: np.ascontiguousarray(part) for name, part in zip(self._inputs, parts)}
        import onnxruntime as ort

        values = [ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(part), "cuda", 0) for part in parts]
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
