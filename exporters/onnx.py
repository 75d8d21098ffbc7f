"""ONNX through torch.onnx's dynamo exporter, falling back to the TorchScript-based one.

FP16 graphs are converted from the FP32 graph by onnxruntime's float16 converter (FP32
inputs and outputs, Casts at the borders), so named layers can stay in FP32 and the
FP16 graph's node names are the FP32 graph's.
"""

from __future__ import annotations

import copy
import heapq
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploybench.errors import ExportError, first_line
from deploybench.exporters.base import ArtifactOptions, Exporter, ExportOptions, example_inputs, trace_batch
from deploybench.models import ModelSpec
from deploybench.plugin_options import at_least
from deploybench.torch_utils import flatten_outputs

log = logging.getLogger(__name__)
# Above this size protobuf cannot hold the weights inline; they go to an external-data file.
EXTERNAL_DATA_BYTES = 1_800_000_000


MIN_OPSET = 7  # older opsets predate the operators every exporter emits


@dataclass(frozen=True)
class OnnxOptions(ArtifactOptions):
    opset: int | None = None  # None: the exporter's default
    simplify: bool = False  # onnxslim after export

    def check(self) -> None:
        at_least("--opset", self.opset, MIN_OPSET)


class OnnxExporter(Exporter):
    name = "onnx"
    suffix = ".onnx"
    requires = ("torch", "onnx", "onnxscript")
    extra = "onnx"
    devices = ("cpu", "cuda")
    precisions = ("fp32", "fp16")
    check_runtime = "onnxruntime"
    Options = OnnxOptions
    key_libraries = ("torch", "onnx", "onnxscript", "onnxslim", "onnxruntime")
    needs_module = False  # an ONNX file is its own artifact
    keep_fp32_precisions = ("fp16",)

    def _export(self, model: ModelSpec, options: ExportOptions, out_dir: Path) -> tuple[str, dict[str, Any]]:
        if model.onnx_path is not None:
            return self._copy_file(model.onnx_path, out_dir)
        import onnx
        import torch

        # Export on the CPU in FP32: the graph is the same, it needs no GPU at export time, and
        # FP16 is a conversion of this graph (below).
        module = model.build()
        example = example_inputs(model, trace_batch(options))
        with torch.no_grad():
            n_outputs = len(flatten_outputs(module(example)))
        output_names = ["output"] if n_outputs == 1 else [f"output{i}" for i in range(n_outputs)]
        path = out_dir / "model.onnx"
        large = sum(p.numel() * p.element_size() for p in module.parameters()) > EXTERNAL_DATA_BYTES
        try:
            self._dynamo_export(module, example, model.input.name, output_names, options, path, large)
            if options.batch.dynamic and not _batch_is_symbolic(path):
                raise ExportError("the dynamo exporter specialised the batch axis to a constant")
            exporter = "dynamo"
        except Exception as exc:  # the dynamo path does not cover every model yet
            log.warning(
                "dynamo ONNX export failed for %s (%s); falling back to the TorchScript exporter",
                model.name,
                first_line(exc),
            )
            for stale in out_dir.iterdir():
                stale.unlink()
            self._torchscript_export(module, example, model.input.name, output_names, options, path)
            exporter = "torchscript"
        if options.simplify:
            self._simplify(path, large)
        if options.precision == "fp16":
            fp16 = to_float16(onnx.load(str(path)), options.keep_fp32)
            onnx.save(fp16, str(path), save_as_external_data=large, location=f"{path.name}.data" if large else None)
        onnx.checker.check_model(str(path))  # the path form handles external data
        opset = next(
            o.version
            for o in onnx.load(str(path), load_external_data=False).opset_import
            if o.domain in ("", "ai.onnx")
        )
        return path.name, {
            "onnx_exporter": exporter,
            "opset": opset,
            "external_data": large,
            "simplified": options.simplify,
            "kept_fp32": list(options.keep_fp32),
        }

    @staticmethod
    def _copy_file(source: Path, out_dir: Path) -> tuple[str, dict[str, Any]]:
        """The user's file byte for byte, with the external-data files it names, so the
        candidate runs exactly what the reference ran."""
        import onnx

        graph = onnx.load(str(source), load_external_data=False)
        data_files = {
            entry.value
            for tensor in graph.graph.initializer
            for entry in tensor.external_data
            if entry.key == "location"
        }
        for name in sorted(data_files):
            (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source.parent / name, out_dir / name)
        shutil.copyfile(source, out_dir / source.name)
        opset = next((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), None)
        return source.name, {
            "onnx_exporter": "file",
            "opset": opset,
            "external_data": bool(data_files),
            "source_file": str(source),
        }

    @staticmethod
    def _dynamo_export(
        module: Any,
        example: Any,
        input_name: str,
        output_names: list[str],
        options: ExportOptions,
        path: Path,
        large: bool,
    ) -> None:
        import torch

        batch = torch.export.Dim("batch", min=1, max=max(options.batch.max, 2))
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            input_names=[input_name],
            output_names=output_names,
            dynamic_shapes=({0: batch},),
            opset_version=options.opset,
            external_data=large,
            verbose=False,
        )
        if program is None:  # torch returns None only from the TorchScript path, which dynamo=True skips
            raise ExportError("torch.onnx.export(dynamo=True) returned no program; update torch or pass --opset")
        program.save(str(path), external_data=large)

    @staticmethod
    def _torchscript_export(
        module: Any, example: Any, input_name: str, output_names: list[str], options: ExportOptions, path: Path
    ) -> None:
        import torch

        axes = {input_name: {0: "batch"}, **{name: {0: "batch"} for name in output_names}}
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=False,
            input_names=[input_name],
            output_names=output_names,
            dynamic_axes=axes,
            opset_version=options.opset or 17,
        )

    @staticmethod
    def _simplify(path: Path, large: bool) -> None:
        import onnx
        import onnxslim

        slim = onnxslim.slim(onnx.load(str(path)))
        onnx.save(slim, str(path), save_as_external_data=large, location=f"{path.name}.data" if large else None)


def to_float16(model: Any, keep_fp32: Sequence[str] = ()) -> Any:
    """``model`` (an FP32 ``onnx.ModelProto``) in FP16, keeping FP32 inputs, outputs and the nodes
    named in ``keep_fp32``."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    names = {node.name for node in model.graph.node}
    unknown = sorted(set(keep_fp32) - names)
    if unknown:
        raise ExportError(
            f"cannot keep {', '.join(unknown[:3])} in FP32: the ONNX graph has no node of that name; "
            "use the layer names deploybench triage prints"
        )
    # Shape inference runs on a copy; the converter would otherwise rewrite the caller's graph.
    converted = convert_float_to_float16(copy.deepcopy(model), keep_io_types=True, node_block_list=list(keep_fp32))
    _sort_topologically(converted.graph)  # the converter appends its Casts at the end
    # Its value_info can keep FP16 types on the outputs of kept nodes; the types are optional, so they go.
    del converted.graph.value_info[:]
    return converted


def _sort_topologically(graph: Any) -> None:
    """Reorder ``graph.node`` so that every node follows the producers of its inputs (Kahn, stable)."""
    nodes = list(graph.node)
    producer = {name: index for index, node in enumerate(nodes) for name in node.output}
    waiting = [len({producer[name] for name in node.input if name in producer}) for node in nodes]
    consumers: dict[int, list[int]] = {}
    for index, node in enumerate(nodes):
        for source in {producer[name] for name in node.input if name in producer}:
            consumers.setdefault(source, []).append(index)
    ready = [index for index, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    ordered = []
    while ready:
        index = heapq.heappop(ready)
        ordered.append(nodes[index])
        for consumer in consumers.get(index, ()):
            waiting[consumer] -= 1
            if waiting[consumer] == 0:
                heapq.heappush(ready, consumer)
    if len(ordered) == len(nodes):  # a cycle is left as it was, for onnx.checker to report
        del graph.node[:]
        graph.node.extend(ordered)


def _batch_is_symbolic(path: Path) -> bool:
    """Whether the first input's leading axis is a named dimension rather than a number."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    first = graph.input[0].type.tensor_type.shape.dim[0]
    return bool(first.dim_param) and not first.HasField("dim_value")
