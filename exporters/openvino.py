"""OpenVINO IR: convert_model + save_model, FP32/FP16 weights, INT8 by NNCF post-training quantization."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

from deploybench.calibration import calibration_samples
from deploybench.errors import ExportError, UnsupportedError
from deploybench.exporters.base import (
    CalibratedOptions,
    Exporter,
    ExportOptions,
    artifact_batch,
    example_inputs,
    trace_batch,
)
from deploybench.models import ModelSpec


class OpenVinoExporter(Exporter):
    name = "openvino"
    aliases = ("ov", "openvino-ir")
    suffix = ".xml"
    requires = ("torch", "openvino")
    extra = "openvino"
    devices = ("cpu", "gpu")
    precisions = ("fp32", "fp16", "int8")
    check_runtime = "openvino"
    Options = CalibratedOptions
    key_libraries = ("torch", "openvino", "nncf")
    needs_module = False  # convert_model reads ONNX files too
    keep_fp32_precisions = ("int8",)

    def _export(self, model: ModelSpec, options: ExportOptions, out_dir: Path) -> tuple[str, dict[str, Any]]:
        import openvino as ov

        if model.onnx_path is not None:
            ov_model = ov.convert_model(str(model.onnx_path))
        else:
            ov_model = ov.convert_model(model.build(), example_input=example_inputs(model, trace_batch(options)))
        batch = artifact_batch(model, options)
        low, high = (batch.min, batch.max) if batch.dynamic else (batch.opt,) * 2
        ov_model.reshape(
            {
                port: ov.PartialShape([ov.Dimension(low, high), *spec.shape])
                for port, spec in zip(ov_model.inputs, model.inputs)
            }
        )
        for port, spec in zip(ov_model.inputs, model.inputs):
            port.get_tensor().set_names({spec.name})
        extra: dict[str, Any] = {}
        if options.precision == "int8":
            ov_model, extra = quantize_int8(ov_model, model, options)
        path = out_dir / "model.xml"
        # INT8 keeps its FP32 scales; FP16 compresses the weights only (compute precision is the runtime's).
        ov.save_model(ov_model, str(path), compress_to_fp16=options.precision == "fp16")
        return path.name, extra


def quantize_int8(ov_model: Any, model: ModelSpec, options: ExportOptions) -> tuple[Any, dict[str, Any]]:
    """NNCF post-training INT8 of ``ov_model``.

    Left in float: the model's own float scope (a YOLO head's box decoding) and the ops named
    in ``options.keep_fp32`` (names as triage reports them), inputs and weights.
    """
    import nncf

    if model.extra_inputs:
        raise UnsupportedError(
            f"INT8 calibration feeds one image input and {model.name} has {len(model.inputs)} "
            "inputs; quantize it yourself and pass the quantized file, or use fp32/fp16"
        )
    samples, origin = calibration_samples(model, options)
    dataset = nncf.Dataset([sample[None] for sample in samples])
    patterns: list[str] = []
    types: list[str] = []
    if model.int8_float_scope is not None:
        scope_patterns, scope_types = model.int8_float_scope(model.build())
        patterns, types = list(scope_patterns), list(scope_types)
    names = list(options.keep_fp32)
    unknown = sorted(set(names) - {op.get_friendly_name() for op in ov_model.get_ops()})
    if unknown:  # checked here, as NNCF's own check would also reject the float scope's unmatched patterns
        raise ExportError(
            f"--keep-fp32 names {', '.join(unknown)}, which {model.name}'s OpenVINO graph does not "
            "have; use the layer names deploybench triage prints"
        )
    ignored = None
    if names or patterns or types:
        # The float scope is written for a family of models, so parts of it may match nothing
        # here (validate=False); the names the user kept were checked above.
        ignored = nncf.IgnoredScope(names=names, patterns=patterns, types=types, validate=False)
    # NNCF draws progress bars on stdout, which belongs to deploybench's tables.
    with contextlib.redirect_stdout(sys.stderr):
        quantized = nncf.quantize(ov_model, dataset, subset_size=len(samples), ignored_scope=ignored)
    kept = {"patterns": patterns, "types": types} if (patterns or types) else None
    return quantized, {
        "calibration": origin,
        "calibration_samples": len(samples),
        "quantizer": "nncf",
        "kept_in_float": kept,
        "kept_fp32": names,
    }
