"""OpenVINO: LATENCY hint with one request for batch 1, THROUGHPUT hint with parallel requests.

On CPUs with AVX-512 BF16 or AMX, OpenVINO picks bf16 compute unless told otherwise, so
the inference precision is always set from the requested precision and read back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deploybench.artifact import Artifact
from deploybench.batch import Batch, arrays
from deploybench.batch import size as batch_size
from deploybench.errors import RuntimeLoadError, UnsupportedError, first_line
from deploybench.runtimes.base import Runtime

# Requested precision -> INFERENCE_PRECISION_HINT. FP16 and INT8 IRs keep FP32 compute for
# the layers they leave in float; "auto" lets OpenVINO choose and records what it chose.
COMPUTE_HINTS = {"fp32": "f32", "fp16": "f32", "int8": "f32", "bf16": "bf16", "auto": None}
TYPE_NAMES = {"f32": "fp32", "bf16": "bf16", "f16": "fp16", "i8": "int8", "u8": "int8"}
MODES = ("auto", "latency", "throughput")


class OpenVinoRuntime(Runtime):
    name = "openvino"
    aliases = ("ov",)
    formats = ("openvino",)
    devices = ("cpu", "gpu", "auto")
    precisions = tuple(COMPUTE_HINTS)
    requires = ("openvino",)
    extra = "openvino"
    timed_region = "host tensors shared with the infer request(s); infer (or start_async x N + wait_all)"

    def _load(self, artifact: Artifact) -> None:
        import openvino as ov
        import openvino.properties as props
        import openvino.properties.hint as hints

        if self.options.mode not in MODES:
            raise UnsupportedError(f"unknown OpenVINO mode {self.options.mode!r}; choose from {', '.join(MODES)}")
        self._core = ov.Core()
        self._device = self.options.device.upper()
        try:
            self._model = self._core.read_model(str(artifact.file))
        except Exception as exc:  # a truncated or foreign IR
            raise RuntimeLoadError(f"{artifact.file.name} is not a readable OpenVINO IR ({first_line(exc)}); export it again") from exc
        self._threads = self.options.resolved_threads()
        self._compiled: dict[str, Any] = {}
        self._hints, self._props = hints, props
        self._result: list[np.ndarray] = []
        self.info.update(threads=self._threads, openvino=ov.__version__, device_name=self._device)

    def _compile(self, mode: str) -> Any:
        """Compile once per performance mode and read back what OpenVINO chose."""
        if mode in self._compiled:
            return self._compiled[mode]
        import openvino as ov

        hints, props = self._hints, self._props
        config: dict[Any, Any] = {
            hints.performance_mode: hints.PerformanceMode.LATENCY if mode == "latency" else hints.PerformanceMode.THROUGHPUT,
        }
        if self._device == "CPU":
            config[props.inference_num_threads] = self._threads
        hint = COMPUTE_HINTS[self.options.precision]
        if hint is not None:
            config[hints.inference_precision] = getattr(ov.Type, hint)
        compiled = self._core.compile_model(self._model, self._device, config)
        used = compiled.get_property(hints.inference_precision).get_type_name()
        float_compute = TYPE_NAMES.get(used, used)
        # An INT8 IR runs its quantized layers in int8; the hint only governs the float rest.
        quantized = self.artifact is not None and self.artifact.precision == "int8"
        requests = 1 if mode == "latency" else int(compiled.get_property(props.optimal_number_of_infer_requests))
        self.info.update(mode=mode, precision_used="int8" if quantized else float_compute, float_compute=float_compute,
                         infer_requests=requests, streams=int(compiled.get_property(props.num_streams)))
        self._compiled[mode] = (compiled, requests)
        return self._compiled[mode]

    def _mode_for(self, batch: int) -> str:
        if self.options.mode != "auto":
            return self.options.mode
        return "latency" if batch == 1 else "throughput"

    def items_per_call(self, batch: int) -> int:
        return batch * self._compile(self._mode_for(batch))[1]

    def _unload(self) -> None:
        self._compiled.clear()
        self._model = self._core = None
        self._queue = self._request = None

    def prepare(self, batch: Batch) -> Any:
        import openvino as ov

        compiled, requests = self._compile(self._mode_for(batch_size(batch)))
        tensors = [ov.Tensor(np.ascontiguousarray(part), shared_memory=True) for part in arrays(batch)]
        if requests == 1:
            self._queue = None
            targets = [compiled.create_infer_request()]
            self._request = targets[0]
        else:
            self._queue = ov.AsyncInferQueue(compiled, requests)
            targets = [self._queue[index] for index in range(len(self._queue))]
        for request in targets:
            for index, tensor in enumerate(tensors):
                request.set_input_tensor(index, tensor)
        return tensors  # shared with the requests: kept alive while they run

    def infer(self, feeds: Any) -> None:
        if self._queue is None:
            self._request.infer()
            return
        for _ in range(len(self._queue)):
            self._queue.start_async()
        self._queue.wait_all()

    def outputs(self) -> list[np.ndarray]:
        request = self._request if self._queue is None else self._queue[0]
        return [np.array(request.get_output_tensor(i).data, dtype=np.float32)
                for i in range(len(request.model_outputs))]
