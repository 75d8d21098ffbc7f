"""OpenVINO: LATENCY hint with one request for batch 1, THROUGHPUT hint with requests in flight above.

As ``benchmark_app -shape`` users run it, the model is reshaped to the static shape of the
batch it is timed at before it is compiled (``dynamic_batch`` keeps the IR's range). In
throughput mode the harness keeps every request of an ``AsyncInferQueue`` busy for the
whole window; each sample is one request on ``batch`` images.

On CPUs with AVX-512 BF16 or AMX, OpenVINO picks bf16 compute unless told otherwise, so
the inference precision is always set from the requested precision and read back. An
FP16-compressed IR keeps its weights rounded to fp16 whatever the compute precision, and
its label says both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from deploybench.artifact import Artifact
from deploybench.batch import Batch, arrays
from deploybench.batch import size as batch_size
from deploybench.errors import RuntimeLoadError, first_line
from deploybench.plugin_options import PluginOptions, one_of
from deploybench.runtimes.base import ConcurrentRuntime, RuntimeOptions

# Requested precision -> INFERENCE_PRECISION_HINT. FP16 and INT8 IRs keep FP32 compute for
# the layers they leave in float; "auto" lets OpenVINO choose and records what it chose.
COMPUTE_HINTS = {"fp32": "f32", "fp16": "f32", "int8": "f32", "bf16": "bf16", "auto": None}
TYPE_NAMES = {"f32": "fp32", "bf16": "bf16", "f16": "fp16", "i8": "int8", "u8": "int8"}
MODES = ("auto", "latency", "throughput")


@dataclass(frozen=True)
class OpenVinoOptions(PluginOptions):
    mode: str = "auto"  # the performance hint: latency (one stream), throughput, or auto (latency at batch 1)

    def check(self) -> None:
        one_of("--mode (OpenVINO's performance hint)", self.mode, MODES)


def precision_label(weights: str, compute: str) -> str:
    """What a compiled model computes: an FP16-compressed IR run in fp32 is ``fp16+fp32``.

    Its error is fp16 rounding of the weights, so the parity check judges it at its loosest
    part (fp16), not at fp32 tolerance.
    """
    if weights == "int8":
        return "int8"  # quantized layers run in int8; the hint governs the float rest
    if weights == "fp16" and compute != "fp16":
        return f"fp16+{compute}"
    return compute


class OpenVinoRuntime(ConcurrentRuntime):
    name = "openvino"
    aliases = ("ov",)
    formats = ("openvino",)
    devices = ("cpu", "gpu", "auto")
    precisions = tuple(COMPUTE_HINTS)
    requires = ("openvino",)
    extra = "openvino"
    Options = OpenVinoOptions
    timed_region = (
        "host tensors shared with the infer request(s); latency: InferRequest.infer (sync, outputs "
        "shared); throughput: every request of an AsyncInferQueue kept busy, each timed from "
        "start_async to its callback"
    )

    def __init__(self, options: RuntimeOptions | None = None) -> None:
        super().__init__(options)
        self._core: Any = None  # ov.Core, made at load
        self._model: Any = None  # the IR as read
        self._device = self.options.device.upper()
        self._threads = 0
        self._compiled: dict[tuple[str, int], tuple[Any, int]] = {}  # (mode, batch) -> (compiled, requests)
        self._request: Any = None
        self._queue: Any = None  # AsyncInferQueue in throughput mode

    def _load(self, artifact: Artifact) -> None:
        import openvino as ov

        OpenVinoOptions.pick(self.options)  # a runtime built without a sweep is checked here
        self._core = ov.Core()
        self._device = self.options.device.upper()
        try:
            self._model = self._core.read_model(str(artifact.file))
        except Exception as exc:  # a truncated or foreign IR
            raise RuntimeLoadError(
                f"{artifact.file.name} is not a readable OpenVINO IR ({first_line(exc)}); export it again"
            ) from exc
        self._threads = self.options.resolved_threads()
        self.info.update(threads=self._threads, openvino=ov.__version__, device_name=self._device)

    def _static_model(self, batch: int) -> Any:
        """A copy of the IR reshaped to ``batch`` (benchmark_app's ``-shape``), or the IR itself."""
        if self.options.dynamic_batch:
            return self._model
        import openvino as ov

        model = self._model.clone()
        model.reshape(
            {port: ov.PartialShape([ov.Dimension(batch), *list(port.get_partial_shape())[1:]]) for port in model.inputs}
        )  # every input shares the leading batch axis
        return model

    def compile(self, mode: str, batch: int) -> tuple[Any, int]:
        """Compile once per mode and batch; read back what OpenVINO chose. Returns (compiled, requests)."""
        key = (mode, batch)
        if key in self._compiled:
            return self._compiled[key]
        import openvino as ov
        import openvino.properties as props
        import openvino.properties.hint as hints

        config: dict[Any, Any] = {
            hints.performance_mode: hints.PerformanceMode.LATENCY
            if mode == "latency"
            else hints.PerformanceMode.THROUGHPUT,
        }
        if self._device == "CPU":
            config[props.inference_num_threads] = self._threads
        hint = COMPUTE_HINTS[self.options.precision]
        if hint is not None:
            config[hints.inference_precision] = getattr(ov.Type, hint)
        compiled = self._core.compile_model(self._static_model(batch), self._device, config)
        used = compiled.get_property(hints.inference_precision).get_type_name()
        compute = TYPE_NAMES.get(used, used)
        weights = self.artifact.precision if self.artifact is not None else "fp32"
        requests = 1 if mode == "latency" else int(compiled.get_property(props.optimal_number_of_infer_requests))
        self.info.update(
            mode=mode,
            precision_used=precision_label(weights, compute),
            float_compute=compute,
            weights=weights,
            infer_requests=requests,
            streams=int(compiled.get_property(props.num_streams)),
            batch_shape="dynamic" if self.options.dynamic_batch else "static",
            compiled_input_shape=str(compiled.inputs[0].get_partial_shape()),
        )
        if self._device == "CPU":  # what the compiled model holds, not what was asked
            self.info["threads"] = int(compiled.get_property(props.inference_num_threads))
        self._compiled[key] = (compiled, requests)
        return self._compiled[key]

    def mode_for(self, batch: int) -> str:
        if self.options.mode != "auto":
            return self.options.mode
        return "latency" if batch == 1 else "throughput"

    def _unload(self) -> None:
        self._compiled.clear()
        self._model = self._core = None
        self._queue = self._request = None

    def prepare(self, batch: Batch) -> Any:
        import openvino as ov

        rows = batch_size(batch)
        compiled, requests = self.compile(self.mode_for(rows), rows)
        tensors = [ov.Tensor(np.ascontiguousarray(part), shared_memory=True) for part in arrays(batch)]
        self._request = compiled.create_infer_request()
        targets = [self._request]
        self._queue = None
        if requests > 1:
            self._queue = ov.AsyncInferQueue(compiled, requests)
            targets += [self._queue[index] for index in range(len(self._queue))]
            self._queue.set_callback(lambda request, done: done())
        for request in targets:
            for index, tensor in enumerate(tensors):
                request.set_input_tensor(index, tensor)
        return tensors  # shared with the requests: kept alive while they run

    own_clock = "OpenVINO InferRequest.latency, what benchmark_app prints (one request at a time only)"

    def last_call_ms(self) -> float | None:
        return float(self._request.latency)

    def infer(self, feeds: Any) -> None:
        # The synchronous call, as benchmark_app -api sync makes it: the request runs in this
        # thread, with no hand-off to OpenVINO's executor and back. share_outputs: returned as
        # views of the request's tensors, not copied into new arrays on every call (host work
        # that benchmark_app's latency leaves out); ``outputs`` reads the tensors when asked.
        self._request.infer(share_outputs=True)

    def requests_in_flight(self) -> int:
        return len(self._queue) if self._queue is not None else 1

    def wait_idle(self) -> None:
        self._queue.get_idle_request_id()

    def submit(self, feeds: Any, done: Callable[[], None]) -> None:
        self._queue.start_async(userdata=done)

    def wait_all(self) -> None:
        self._queue.wait_all()

    def outputs(self) -> list[np.ndarray]:
        request = self._request
        return [
            np.array(request.get_output_tensor(i).data, dtype=np.float32) for i in range(len(request.model_outputs))
        ]
