"""``deploybench info``: everything worth knowing about a model before exporting it."""

from __future__ import annotations

from typing import Any

from deploybench.models import count_flops, resolve


def describe_model(spec: str, **weights: Any) -> dict[str, Any]:
    """Source, task, input, outputs, exact parameter count and counted FLOPs of one image."""
    model = resolve(spec, **weights)
    data: dict[str, Any] = {
        "name": model.name, "spec": spec, "source": model.source, "library": f"{model.library} {model.library_version}",
        "task": model.task, "weights": model.weights,
        "input": {"name": model.input.name, "shape": ["batch", *model.input.shape], "dtype": model.input.dtype,
                  "mean": model.input.mean, "std": model.input.std, "value_range": model.input.value_range},
    }
    if model.has_module:
        import torch

        from deploybench.torch_utils import flatten_outputs

        module = model.build()
        with torch.inference_mode():
            outputs = flatten_outputs(module(torch.zeros(model.input.with_batch(1))))
        data["outputs"] = [{"name": "output" if len(outputs) == 1 else f"output{i}", "shape": ["batch", *o.shape[1:]]}
                           for i, o in enumerate(outputs)]
        data["parameters"] = model.parameters
        data["flops"] = count_flops(module, model.input)
    else:
        data["outputs"], data["parameters"], data["flops"] = None, None, None
    data["weights"] = model.weights  # after the build: a checkpoint's load is described only then
    data["notes"] = model.notes
    return data
