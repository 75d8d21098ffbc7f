"""ONNX through torch.onnx's dynamo exporter, falling back to the TorchScript-based one."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from deploybench.errors import ExportError, first_line
from deploybench.exporters.base import ExportOptions, Exporter, example_inputs, trace_batch
from deploybench.models import ModelSpec
from deploybench.torch_utils import flatten_outputs, module_for, torch_dtype

log = logging.getLogger(__name__)
# Above this size protobuf cannot hold the weights inline; they go to an external-data file.
EXTERNAL_DATA_BYTES = 1_800_000_000


class OnnxExporter(Exporter):
    name = "onnx"
    suffix = ".onnx"
    requires = ("torch", "onnx", "onnxscript")
    extra = "onnx"
    devices = ("cpu", "cuda")
    precisions = ("fp32", "fp16")
    check_runtime = "onnxruntime"
    key_options = ("precision", "batch", "opset", "simplify")
    key_libraries = ("torch", "onnx", "onnxscript", "onnxslim")
    needs_module = False  # an ONNX file is its own artifact

    def _export(self, model: ModelSpec, options: ExportOptions, out_dir: Path) -> tuple[str, dict[str, Any]]:
        if model.onnx_path is not None:
            return self._copy_file(model.onnx_path, out_dir)
        import onnx
        import torch

        # Export on the CPU: the graph is the same, and it needs no GPU at export time.
        module = module_for(model.build(), "cpu", options.precision)
        example = example_inputs(model, trace_batch(options), torch_dtype(options.precision))
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
            log.warning("dynamo ONNX export failed for %s (%s); falling back to the TorchScript exporter",
                        model.name, first_line(exc))
            for stale in out_dir.iterdir():
                stale.unlink()
            self._torchscript_export(module, example, model.input.name, output_names, options, path)
            exporter = "torchscript"
        if options.simplify:
            self._simplify(path, large)
        onnx.checker.check_model(str(path))  # the path form handles external data
        opset = next(o.version for o in onnx.load(str(path), load_external_data=False).opset_import if o.domain in ("", "ai.onnx"))
        return path.name, {"onnx_exporter": exporter, "opset": opset, "external_data": large,
                           "simplified": options.simplify}

    @staticmethod
    def _copy_file(source: Path, out_dir: Path) -> tuple[str, dict[str, Any]]:
        """The user's file byte for byte, with the external-data files it names, so the
        candidate runs exactly what the reference ran."""
        import onnx

        graph = onnx.load(str(source), load_external_data=False)
        data_files = {entry.value for tensor in graph.graph.initializer for entry in tensor.external_data
                      if entry.key == "location"}
        for name in sorted(data_files):
            (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source.parent / name, out_dir / name)
        shutil.copyfile(source, out_dir / source.name)
        opset = next((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), None)
        return source.name, {"onnx_exporter": "file", "opset": opset, "external_data": bool(data_files),
                             "source_file": str(source)}

    @staticmethod
    def _dynamo_export(module: Any, example: Any, input_name: str, output_names: list[str],
                       options: ExportOptions, path: Path, large: bool) -> None:
        import torch

        batch = torch.export.Dim("batch", min=1, max=max(options.batch.max, 2))
        program = torch.onnx.export(
            module, (example,), dynamo=True, input_names=[input_name], output_names=output_names,
            dynamic_shapes=({0: batch},), opset_version=options.opset, external_data=large, verbose=False)
        program.save(str(path), external_data=large)

    @staticmethod
    def _torchscript_export(module: Any, example: Any, input_name: str, output_names: list[str],
                            options: ExportOptions, path: Path) -> None:
        import torch

        axes = {input_name: {0: "batch"}, **{name: {0: "batch"} for name in output_names}}
        torch.onnx.export(module, (example,), str(path), dynamo=False, input_names=[input_name],
                          output_names=output_names, dynamic_axes=axes, opset_version=options.opset or 17)

    @staticmethod
    def _simplify(path: Path, large: bool) -> None:
        import onnx
        import onnxslim

        slim = onnxslim.slim(onnx.load(str(path)))
        onnx.save(slim, str(path), save_as_external_data=large, location=f"{path.name}.data" if large else None)


def _batch_is_symbolic(path: Path) -> bool:
    """Whether the first input's leading axis is a named dimension rather than a number."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    first = graph.input[0].type.tensor_type.shape.dim[0]
    return bool(first.dim_param) and not first.HasField("dim_value")
