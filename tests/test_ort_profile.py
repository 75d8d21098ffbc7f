"""What an ONNX Runtime profile says a node computed in, and the label a row gets from it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from deploybench.runtimes.ort_profile import computed_precision, nodes_by_precision

DATA = Path(__file__).parent / "data"
CPU_SAMPLE = json.loads((DATA / "ort_profile_cpu_sample.json").read_text())  # six fp32 CPU nodes


def node(name: str, op: str, output_types: list[str], provider: str = "CPUExecutionProvider") -> dict:
    """A kernel event as ONNX Runtime writes it, with the fields these functions read."""
    event = copy.deepcopy(CPU_SAMPLE[0])
    event["name"] = f"{name}_kernel_time"
    event["args"].update(op_name=op, provider=provider, output_type_shape=[{dtype: [1, 8]} for dtype in output_types])
    return event


def fp16_graph_on_the_cpu() -> list[dict]:
    """An FP16 graph as the CPU provider runs it: a Conv in fp16, a Softmax wrapped in Casts to fp32."""
    return [
        {"cat": "Session", "name": "model_run", "args": {}},
        node("conv", "Conv", ["float16"]),
        node("to_fp32", "Cast", ["float"]),
        node("softmax", "Softmax", ["float"]),
        node("to_fp16", "Cast", ["float16"]),
        node("shape", "Shape", ["int64"]),
        node("top", "TopK", ["float16", "int64"]),
        {"cat": "Node", "name": "conv_fence_before", "args": {"op_name": "Conv"}},  # older releases
        node("conv", "Conv", ["float16"]),  # the same node in a second run counts once
    ]


def test_compute_nodes_are_counted_by_their_first_float_output() -> None:
    assert nodes_by_precision(fp16_graph_on_the_cpu()) == {"fp16": 2, "fp32": 1}
    assert nodes_by_precision(CPU_SAMPLE) == {"fp32": 6}


def test_the_type_names_are_the_ones_onnx_runtime_writes(tmp_path: Path) -> None:
    """A real profile of Casts to each float type: every element type it names is one the parser knows."""
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is in the onnx extra")
    import numpy as np
    from onnx import TensorProto, helper

    from deploybench.runtimes.ort_profile import PROFILE_FLOATS, enable_first_run_profile, read_profile

    casts = [("half", TensorProto.FLOAT16), ("brain", TensorProto.BFLOAT16)]
    nodes = [helper.make_node("Cast", ["x"], [name], to=to) for name, to in casts]
    nodes += [helper.make_node("Cast", [name], [f"{name}_back"], to=TensorProto.FLOAT) for name, _ in casts]
    outputs = [helper.make_tensor_value_info(f"{name}_back", TensorProto.FLOAT, [2]) for name, _ in casts]
    graph = helper.make_graph(nodes, "casts", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])], outputs)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every Cast
    enable_first_run_profile(options, tmp_path)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    session.run(None, {"x": np.ones(2, np.float32)})
    named = {
        name
        for event in read_profile(session)
        for entry in (event.get("args") or {}).get("output_type_shape", [])
        for name in entry
    }
    assert named == set(PROFILE_FLOATS) == {"float", "float16", "bfloat16"}


def test_a_tensorrt_engine_node_is_not_counted() -> None:
    """Its outputs are the graph's float32 boundary, whatever precision the engine ran in."""
    events = [node("TRTKernel_graph_0", "TRTKernel_graph_0", ["float"], provider="TensorrtExecutionProvider")]
    assert nodes_by_precision(events) == {}


@pytest.mark.parametrize(
    ("graph", "counts", "label"),
    [
        ("fp16", {"fp16": 2, "fp32": 1}, "fp16+fp32"),  # some nodes wrapped in Casts to fp32
        ("fp16", {"fp32": 40}, "fp16+fp32"),  # every node computed in fp32 from fp16 weights
        ("fp16", {"fp16": 40}, "fp16"),
        ("fp16", {}, "fp16"),  # nothing readable: the graph's own label stands
        ("fp32", {"fp32": 40}, "fp32"),
    ],
)
def test_the_label_says_what_the_nodes_computed_in(graph: str, counts: dict[str, int], label: str) -> None:
    assert computed_precision(graph, counts) == label
