"""OpenVINO tap: the FP32 IR is the reference; the candidate is the INT8 (or FP16) IR of the same model.

Outputs are added on the IR's nodes (``Model.add_outputs``), a pass at a time, on clones
of both models. Layers match by friendly name: NNCF keeps the names of the ops it
quantizes and adds FakeQuantize nodes of its own, which have no counterpart and drop out.
OpenVINO's friendly names keep the traced module path (``__module.layer1.0.conv1/...``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from deploybench.artifact import Artifact
from deploybench.errors import UnsupportedError
from deploybench.models import ModelSpec
from deploybench.triage.taps import GraphLayer, LayerTap, producers

# Ops that hold no activation of their own, or only move one (their error is their input's).
NOT_LAYERS = {
    "Parameter",
    "Result",
    "Constant",
    "Convert",
    "FakeQuantize",
    "ShapeOf",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
}
FLOAT_TYPES = {"f32": 4, "f16": 2, "bf16": 2, "f64": 8}
MODULE = re.compile(r"^__module\.([^/]+)/")


def module_path(friendly_name: str) -> str | None:
    match = MODULE.match(friendly_name)
    return match.group(1) if match else None


def _ops(model: Any) -> dict[str, Any]:
    return {op.get_friendly_name(): op for op in model.get_ordered_ops()}


class OpenVinoTap(LayerTap):
    runtime = "openvino"
    format = "openvino"
    mechanism = "nncf.quantize(..., ignored_scope=nncf.IgnoredScope(names=[...])) (ops left unquantized)"

    def __init__(
        self,
        core: Any,
        reference: Any,
        candidate: Any,
        precision: str,
        spec: ModelSpec | None,
        export_options: Any,
        threads: int | None,
    ) -> None:
        self.core, self.reference_model, self.candidate_model = core, reference, candidate
        self.precision, self.spec, self.export_options, self.threads = precision, spec, export_options, threads
        candidate_ops = _ops(candidate)
        self._layers: list[GraphLayer] = []
        matched: set[str] = set()
        reference_ops = list(reference.get_ordered_ops())
        for op in reference_ops:
            name = op.get_friendly_name()
            twin = candidate_ops.get(name)
            if (
                op.get_type_name() in NOT_LAYERS
                or twin is None
                or twin.get_type_name() != op.get_type_name()
                or op.get_output_size() == 0
                or op.get_output_element_type(0).get_type_name() not in FLOAT_TYPES
            ):
                continue
            matched.add(name)
        by_name = {op.get_friendly_name(): op for op in reference_ops}

        def direct(name):
            return [
                by_name[name].input_value(i).get_node().get_friendly_name()
                for i in range(by_name[name].get_input_size())
            ]

        memo: dict[str, tuple[str, ...]] = {}
        for op in reference_ops:
            name = op.get_friendly_name()
            if name in matched:
                shape = op.get_output_partial_shape(0)
                static = shape.rank.is_static and all(d.is_static for d in list(shape)[1:])
                size = int(np.prod([d.get_length() for d in list(shape)[1:]])) * 4 if static else None
                self._layers.append(
                    GraphLayer(
                        name,
                        op.get_type_name(),
                        module_path(name),
                        producers(name, direct, matched.__contains__, memo),
                        size,
                    )
                )

    @classmethod
    def open(
        cls,
        reference: Artifact,
        candidate: Artifact,
        spec: ModelSpec | None = None,
        export_options: Any = None,
        threads: int | None = None,
    ) -> OpenVinoTap:
        import openvino as ov

        core = ov.Core()
        return cls(
            core,
            core.read_model(str(reference.file)),
            core.read_model(str(candidate.file)),
            candidate.precision,
            spec,
            export_options,
            threads,
        )

    def layers(self) -> list[GraphLayer]:
        return list(self._layers)

    def _compile(self, model: Any) -> Any:
        from deploybench.runtimes.openvino import COMPUTE_HINTS

        # As the openvino runtime runs them: float compute pinned (no silent bf16), latency hint.
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        hint = COMPUTE_HINTS.get(self.precision)
        if hint:
            config["INFERENCE_PRECISION_HINT"] = hint
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        return self.core.compile_model(model, "CPU", config)

    def _tapped(self, model: Any, names: Sequence[str], inputs: np.ndarray) -> list[np.ndarray]:
        clone = model.clone()
        ops = _ops(clone)
        clone.add_outputs([ops[name].output(0) for name in names])  # a model output already is one: not added twice
        sources = [result.input_value(0) for result in clone.get_results()]  # compiled outputs follow this order
        position = {(src.get_node().get_friendly_name(), src.get_index()): index for index, src in enumerate(sources)}
        values = list(self._compile(clone)(inputs).values())
        return [np.asarray(values[position[(name, 0)]]) for name in names]

    def run(self, inputs: np.ndarray, names: Sequence[str]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        reference = self._tapped(self.reference_model, names, inputs)
        candidate = self._tapped(self.candidate_model, names, inputs)
        yield from zip(names, reference, candidate)

    def candidate_outputs(self, inputs: np.ndarray) -> list[np.ndarray]:
        result = self._compile(self.candidate_model)(inputs)
        return [np.asarray(value, dtype=np.float32) for value in result.values()]

    def keep_unsupported(self) -> str | None:
        if self.precision != "int8":
            return (
                f"an OpenVINO {self.precision} IR keeps FP32 compute (only its weights are compressed); "
                "there is no layer to keep in FP32"
            )
        if self.spec is None:
            return "rebuilding the INT8 IR needs the model's calibration inputs; triage it by model name"
        return None

    def keeping(self, keep: Sequence[str]) -> OpenVinoTap:
        from deploybench.exporters.base import ExportOptions
        from deploybench.exporters.openvino import quantize_int8

        if (why := self.keep_unsupported()) or self.spec is None:
            raise UnsupportedError(why or "no model to rebuild the IR from")
        options = replace(self.export_options or ExportOptions(precision="int8"), keep_fp32=tuple(keep))
        quantized, _ = quantize_int8(self.reference_model.clone(), self.spec, options)
        return OpenVinoTap(
            self.core, self.reference_model, quantized, self.precision, self.spec, self.export_options, self.threads
        )
