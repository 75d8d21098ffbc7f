"""``deploybench info``: everything worth knowing about a model before exporting it."""

from __future__ import annotations

from typing import Any

from deploybench.inputs import count_flops
from deploybench.models import resolve


def describe_model(spec: str, **weights: Any) -> dict[str, Any]:
    """Source, task, input, outputs, exact parameter count, and counted FLOPs and MACs of one image."""
    model = resolve(spec, **weights)
    data: dict[str, Any] = {
        "name": model.name,
        "spec": spec,
        "source": model.source,
        "library": f"{model.library} {model.library_version}",
        "task": model.task,
        "weights": model.weights,
        "inputs": [
            {
                "name": spec.name,
                "shape": [model.fixed_batch or "batch", *spec.shape],
                "dtype": spec.dtype,
                "mean": spec.mean,
                "std": spec.std,
                "value_range": spec.value_range,
            }
            for spec in model.inputs
        ],
    }
    if model.has_module:
        import torch

        from deploybench.torch_utils import flatten_outputs

        module = model.build()
        with torch.inference_mode():
            outputs = flatten_outputs(module(torch.zeros(model.input.with_batch(1))))
        data["outputs"] = [
            {"name": "output" if len(outputs) == 1 else f"output{i}", "shape": ["batch", *o.shape[1:]]}
            for i, o in enumerate(outputs)
        ]
        data["parameters"] = model.parameters
        data["flops"] = count_flops(module, model.input)
        data["macs"] = data["flops"] // 2  # FlopCounterMode counts convolutions and matmuls, 2 FLOPs per MAC
    else:  # an ONNX file: what the graph declares; nothing runs
        from deploybench.sources import read_onnx_graph

        assert model.onnx_path is not None, "a spec without a module is an ONNX file"
        data["outputs"] = [
            {"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in read_onnx_graph(model.onnx_path).outputs
        ]
        data["parameters"], data["flops"], data["macs"] = None, None, None
    data["weights"] = model.weights  # after the build: a checkpoint's load is described only then
    data["notes"] = model.notes
    return data
