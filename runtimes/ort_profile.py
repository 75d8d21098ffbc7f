"""What ONNX Runtime's profile of one run says: which provider ran each node, and in which
float type each node computed.

deploybench profiles a session's first run only (ONNX Runtime stops collecting at
``end_profiling``, so the timed runs carry no profiling cost), where a row needs it: on a GPU
provider, to name the nodes left on the CPU; for a graph below fp32, to say what really ran
in fp16 (ONNX Runtime's CPU provider runs an op it has no fp16 kernel for in fp32, between
Casts it inserts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KERNEL_SUFFIX = "_kernel_time"
# Element type names in a profile's ``output_type_shape`` entries (as ONNX Runtime 1.32 writes
# them; tests/test_ort_profile.py reads them from a real profile) -> deploybench's precision names.
PROFILE_FLOATS = {"float": "fp32", "float16": "fp16", "bfloat16": "bf16"}
# Nodes that convert, copy or rearrange a tensor rather than compute with it: their kernels take
# any type, so an fp16 output says nothing of arithmetic.
NOT_COMPUTE = frozenset(
    {
        "Cast",
        "MemcpyToHost",
        "MemcpyFromHost",
        "Identity",
        "Reshape",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Transpose",
        "Concat",
        "Split",
        "Slice",
        "Gather",
        "Expand",
        "Tile",
        "Pad",
        "DepthToSpace",
        "SpaceToDepth",
        "ReorderInput",  # the CPU provider's NCHWc layout changes
        "ReorderOutput",
    }
)
# A TensorRT engine is one node whose outputs are the graph's boundary, whatever it computed inside.
OPAQUE_PROVIDERS = frozenset({"TensorrtExecutionProvider"})


def enable_first_run_profile(session_options: Any, folder: Path) -> None:
    """Profile the session's runs until ``read_profile`` ends it (deploybench reads it after the first)."""
    session_options.enable_profiling = True
    session_options.profile_file_prefix = str(folder / "ort-profile")


def read_profile(session: Any) -> list[dict[str, Any]]:
    """End profiling and return its events (the file is removed)."""
    path = session.end_profiling()
    try:
        events: list[dict[str, Any]] = json.loads(Path(path).read_text())
        return events
    finally:
        Path(path).unlink(missing_ok=True)


def kernel_nodes(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each node's profile arguments, from its kernel event (``<node>_kernel_time``).

    The fence events of older releases carry no provider and are skipped. A node seen twice
    (several runs) counts once.
    """
    nodes: dict[str, dict[str, Any]] = {}
    for event in events:
        args = event.get("args") or {}
        name = str(event.get("name", ""))
        if event.get("cat") == "Node" and args.get("provider") and name.endswith(KERNEL_SUFFIX):
            nodes[name[: -len(KERNEL_SUFFIX)]] = args
    return nodes


@dataclass(frozen=True)
class NodePlacement:
    """Which execution provider ran each node of one profiled run."""

    nodes_by_provider: dict[str, int]
    cpu_nodes: list[str]  # "OpType:node name" of the nodes that ran on the CPU

    def to_dict(self) -> dict[str, Any]:
        return {"nodes_by_provider": self.nodes_by_provider, "cpu_nodes": self.cpu_nodes}


def node_placement(events: list[dict[str, Any]]) -> NodePlacement:
    """Parse ONNX Runtime's profile (Chrome trace JSON): each kernel event's ``args.provider``."""
    counts: dict[str, int] = {}
    on_cpu = []
    for node, args in kernel_nodes(events).items():
        provider = str(args["provider"])
        counts[provider] = counts.get(provider, 0) + 1
        if provider == "CPUExecutionProvider":
            on_cpu.append(f"{args.get('op_name', '?')}:{node}")
    return NodePlacement(nodes_by_provider=counts, cpu_nodes=on_cpu)


def nodes_by_precision(events: list[dict[str, Any]]) -> dict[str, int]:
    """How many compute nodes produced each float type, judged by their first floating output.

    Left out: ``NOT_COMPUTE`` (casts, copies, reshapes: they convert or move, not compute),
    nodes with no floating output (shape arithmetic, argmax), and TensorRT engines (see
    ``OPAQUE_PROVIDERS``).
    """
    counts: dict[str, int] = {}
    for args in kernel_nodes(events).values():
        if args.get("op_name") in NOT_COMPUTE or args["provider"] in OPAQUE_PROVIDERS:
            continue
        floats = [
            PROFILE_FLOATS[name]
            for entry in args.get("output_type_shape") or []
            for name in entry
            if name in PROFILE_FLOATS
        ]
        if floats:
            counts[floats[0]] = counts.get(floats[0], 0) + 1
    return counts


def computed_precision(graph_precision: str, counts: dict[str, int]) -> str:
    """The label of what ran: a graph below fp32 whose nodes all computed at its precision keeps
    its label; where some computed in fp32 it is ``fp16+fp32``, the label OpenVINO's rows give an
    FP16 IR computed in fp32 (its error is still the fp16 weights' and boundaries', so parity
    judges it at fp16). Without counts (nothing readable) the graph's own label stands."""
    if graph_precision == "fp32" or not counts:
        return graph_precision
    if set(counts) <= {graph_precision}:
        return graph_precision
    return "+".join([graph_precision, *sorted(set(counts) - {graph_precision})])
