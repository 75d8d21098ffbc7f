"""The facts model-comparison tables quote: parameters, MACs and FLOPs of one image, the input shape.

Papers and model zoos quote multiply-accumulates (ResNet-50 "4.1 GMACs"); profilers and
``info`` count FLOPs. torch's ``FlopCounterMode`` counts the convolutions and matrix
products (2 FLOPs per MAC) and nothing elementwise, which is exactly what the zoos' MAC
figures cover, so MACs here are its FLOPs halved, and both are labelled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # results documents load this module; they need no model code
    from deploybench.models import ModelSpec


@dataclass(frozen=True)
class ModelFacts:
    """What one model is, independent of format and runtime. Counts are None where no module runs
    (an ONNX file) or torch's counter cannot trace the module."""

    parameters: int | None
    flops: int | None  # per image: convolutions and matrix products, 2 per multiply-accumulate
    input_shape: tuple[int, ...]  # one image of the first input, without the batch

    @property
    def macs(self) -> int | None:
        return None if self.flops is None else self.flops // 2

    def achieved_gflops(self, images_per_second: float | None) -> float | None:
        """GFLOP/s a row reached at ``images_per_second``."""
        if self.flops is None or not images_per_second:
            return None
        return self.flops * images_per_second / 1e9

    def describe(self) -> str:
        """``3.2 M parameters, 4.37 GMACs (8.74 GFLOPs) per image, input 3x640x640``."""
        parts = [
            f"{self.parameters / 1e6:.1f} M parameters" if self.parameters is not None else "parameters not counted"
        ]
        if self.flops is not None:
            parts.append(f"{self.flops / 2e9:.2f} GMACs ({self.flops / 1e9:.2f} GFLOPs) per image")
        parts.append("input " + "x".join(map(str, self.input_shape)))
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "input_shape": list(self.input_shape), "macs": self.macs}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelFacts:
        return cls(
            parameters=data.get("parameters"), flops=data.get("flops"), input_shape=tuple(data.get("input_shape", ()))
        )


def model_facts(model: ModelSpec) -> ModelFacts:
    """Count ``model``'s facts (builds the module once; an ONNX file gets its shape only)."""
    from deploybench.inputs import count_flops

    shape = tuple(model.input.shape)
    if not model.has_module:
        return ModelFacts(parameters=None, flops=None, input_shape=shape)
    try:
        flops: int | None = count_flops(model.build(), model.input) or None
    except Exception:  # a module torch's counter cannot trace: the facts say so rather than end the run
        flops = None
    return ModelFacts(parameters=model.parameters, flops=flops, input_shape=shape)
