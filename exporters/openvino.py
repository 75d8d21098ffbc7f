"""OpenVINO IR: convert_model + save_model, FP32/FP16 weights, INT8 by NNCF post-training quantization."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

from deploybench.calibration import calibration_samples
from deploybench.exporters.base import ExportOptions, Exporter, example_inputs, trace_batch
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
    key_options = ("precision", "batch", "calib_data", "calib_size")
    key_libraries = ("torch", "openvino", "nncf")
    keep_fp32_precisions = ("int8",)

    def _export(self, model: ModelSpec, options: ExportOptions, out_dir: Path) -> tuple[str, dict[str, Any]]:
        import openvino as ov

        ov_model = ov.convert_model(model.build(), example_input=example_inputs(model, trace_batch(options)))
        low, high = (options.batch.min, options.batch.max) if options.batch.dynamic else (options.batch.opt,) * 2
        ov_model.reshape({ov_model.inputs[0]: ov.PartialShape([ov.Dimension(low, high), *model.input.shape])})
        ov_model.inputs[0].get_tensor().set_names({model.input.name})
        extra: dict[str, Any] = {}
        if options.precision == "int8":
            ov_model, extra = quantize_int8(ov_model, model, options)
        path = out_dir / "model.xml"
        # INT8 keeps its FP32 scales; FP16 compresses the weights only (compute precision is the runtime's).
        ov.save_model(ov_model, str(path), compress_to_fp16=options.precision == "fp16")
        return path.name, extra


def quantize_int8(ov_model: Any, model: ModelSpec, options: ExportOptions) -> tuple[Any, dict[str, Any]]:
    """NNCF post-training INT8 of ``ov_model``, leaving the ops named in ``options.keep_fp32`` unquantized."""
    import nncf

    samples, origin = calibration_samples(model, options)
    dataset = nncf.Dataset([sample[None] for sample in samples])
    # NNCF draws progress bars on stdout, which belongs to deploybench's tables.
    # Kept layers are left unquantized, inputs and weights (names as triage reports them).
    ignored = nncf.IgnoredScope(names=list(options.keep_fp32)) if options.keep_fp32 else None
    with contextlib.redirect_stdout(sys.stderr):
        quantized = nncf.quantize(ov_model, dataset, subset_size=len(samples), ignored_scope=ignored)
    return quantized, {"calibration": origin, "calibration_samples": len(samples), "quantizer": "nncf",
                       "kept_fp32": list(options.keep_fp32)}
