"""ONNX Runtime tap: the FP32 graph in ORT on the CPU is the reference; the candidate is the lower-precision graph.

Every float tensor that a node of the reference graph produces is marked as a graph
output in both graphs (a session run asks for a few at a time, so only those are kept).
Layers match by node name: the FP16 converter keeps the FP32 graph's node names and adds
Casts of its own, which have no counterpart and drop out.
"""

from __future__ import annotations

import ast
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deploybench.artifact import Artifact
from deploybench.errors import UnsupportedError
from deploybench.models import ModelSpec
from deploybench.triage.taps import GraphLayer, LayerTap, producers

FLOAT_TYPES = {1: 4, 10: 2, 11: 8, 16: 2}  # onnx.TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16 -> bytes
# Nodes a precision conversion inserts; never layers of their own.
CONVERSION_OPS = {"Cast", "CastLike", "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
NAME_SCOPES = "pkg.torch.onnx.name_scopes"  # dynamo exporter: the module path of each node


def module_path(node: Any) -> str | None:
    """The PyTorch module that produced ``node``: dynamo's name scopes, else a TorchScript-style ``/a/b/Op`` name."""
    for prop in node.metadata_props:
        if prop.key == NAME_SCOPES:
            try:
                scopes = [s for s in ast.literal_eval(prop.value) if s]
            except (ValueError, SyntaxError):
                return None
            return ".".join(scopes[:-1]) or None  # the last scope is the op itself
    if node.name.startswith("/") and node.name.count("/") > 1:
        return ".".join(part for part in node.name.strip("/").split("/")[:-1]) or None
    return None


def _typed_values(model: Any) -> dict[str, Any]:
    """Tensor name -> ValueInfoProto (type, shape), from ONNX shape inference."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    return {v.name: v for v in [*graph.value_info, *graph.output, *graph.input]}


def _elem_type(value: Any) -> int | None:
    return value.type.tensor_type.elem_type if value is not None and value.type.HasField("tensor_type") else None


def _bytes_per_image(value: Any) -> int | None:
    dims = value.type.tensor_type.shape.dim[1:]
    if not all(d.HasField("dim_value") for d in dims):
        return None
    return int(np.prod([d.dim_value for d in dims])) * FLOAT_TYPES[value.type.tensor_type.elem_type]


def _with_outputs(model: Any, elem_types: dict[str, int]) -> Any:
    """A copy of ``model`` with the tensors of ``elem_types`` (name -> ONNX element type) added as graph outputs."""
    import onnx

    marked = onnx.ModelProto()
    marked.CopyFrom(model)
    present = {o.name for o in marked.graph.output}
    marked.graph.output.extend(
        onnx.helper.make_tensor_value_info(name, elem_type, None)
        for name, elem_type in elem_types.items()
        if name not in present
    )
    return marked


class OnnxRuntimeTap(LayerTap):
    runtime = "onnxruntime"
    format = "onnx"
    mechanism = "onnxruntime.transformers.float16 node_block_list (ONNX nodes kept in FP32)"

    def __init__(self, reference: Any, candidate: Any, precision: str, threads: int | None = None) -> None:
        self.reference_model, self.candidate_model, self.precision = reference, candidate, precision
        self.threads = threads
        ref_values, cand_values = _typed_values(reference), _typed_values(candidate)
        by_name = {node.name: node for node in candidate.graph.node if node.op_type not in CONVERSION_OPS}
        # layer name -> (reference tensor, candidate tensor); tensor -> element type, per side
        self._tensors: dict[str, tuple[str, str]] = {}
        self._types: tuple[dict[str, int], dict[str, int]] = ({}, {})
        self._layers: list[GraphLayer] = []
        nodes = {node.name: node for node in reference.graph.node}
        made_by = {out: node.name for node in reference.graph.node for out in node.output}
        for node in reference.graph.node:
            twin = by_name.get(node.name)
            if not node.name or twin is None or twin.op_type != node.op_type or not node.output:
                continue
            ref_out, cand_out = node.output[0], twin.output[0]
            ref_type, cand_type = _elem_type(ref_values.get(ref_out)), _elem_type(cand_values.get(cand_out))
            if ref_type not in FLOAT_TYPES or cand_type not in FLOAT_TYPES:
                continue
            self._tensors[node.name] = (ref_out, cand_out)
            self._types[0][ref_out], self._types[1][cand_out] = ref_type, cand_type
        memo: dict[str, tuple[str, ...]] = {}
        direct = lambda name: [made_by[i] for i in nodes[name].input if i in made_by]  # noqa: E731
        for node in reference.graph.node:
            if node.name in self._tensors:
                self._layers.append(
                    GraphLayer(
                        name=node.name,
                        op=node.op_type,
                        module=module_path(node),
                        inputs=producers(node.name, direct, self._tensors.__contains__, memo),
                        bytes_per_image=_bytes_per_image(ref_values[node.output[0]]),
                    )
                )
        self._outputs = [o.name for o in candidate.graph.output]
        self._sessions: dict[str, Any] = {}

    @classmethod
    def open(
        cls,
        reference: Artifact,
        candidate: Artifact,
        spec: ModelSpec | None = None,
        export_options: Any = None,
        threads: int | None = None,
    ) -> OnnxRuntimeTap:
        import onnx

        return cls(onnx.load(str(reference.file)), onnx.load(str(candidate.file)), candidate.precision, threads)

    def layers(self) -> list[GraphLayer]:
        return list(self._layers)

    def _session(self, which: str) -> Any:
        """One session per graph, with every matched tensor marked as an output."""
        if which not in self._sessions:
            import onnxruntime as ort

            model = self.reference_model if which == "reference" else self.candidate_model
            marked = _with_outputs(model, self._types[0 if which == "reference" else 1])
            options = ort.SessionOptions()
            if self.threads:
                options.intra_op_num_threads = self.threads
            # External data keeps models above protobuf's 2 GB limit loadable.
            with tempfile.TemporaryDirectory(prefix="deploybench-triage-") as scratch:
                path = Path(scratch) / "tapped.onnx"
                import onnx

                onnx.save(marked, str(path), save_as_external_data=True, location="tapped.onnx.data")
                self._sessions[which] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return self._sessions[which]

    def run(self, inputs: np.ndarray, names: Sequence[str]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        reference, candidate = self._session("reference"), self._session("candidate")
        feed = {reference.get_inputs()[0].name: inputs}
        ref_values = reference.run([self._tensors[n][0] for n in names], feed)
        cand_values = candidate.run([self._tensors[n][1] for n in names], {candidate.get_inputs()[0].name: inputs})
        yield from zip(names, ref_values, cand_values)

    def candidate_outputs(self, inputs: np.ndarray) -> list[np.ndarray]:
        session = self._session("candidate")
        values = session.run(self._outputs, {session.get_inputs()[0].name: inputs})
        return [np.asarray(v, dtype=np.float32) for v in values]

    def keep_unsupported(self) -> str | None:
        if self.precision != "fp16":
            return f"deploybench converts ONNX graphs to fp16 only; a {self.precision} graph cannot be rebuilt here"
        return None

    def keeping(self, keep: Sequence[str]) -> OnnxRuntimeTap:
        from deploybench.exporters.onnx import to_float16

        if why := self.keep_unsupported():
            raise UnsupportedError(why)
        return OnnxRuntimeTap(
            self.reference_model, to_float16(self.reference_model, keep), self.precision, self.threads
        )

    def close(self) -> None:
        self._sessions.clear()
