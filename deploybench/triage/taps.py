"""Layer taps: run a reference graph and a candidate graph, hand back their matched intermediate tensors.

One tap per runtime, found through ``TAPS`` (runtime name -> ``module:Class``, imported
lazily). A tap matches tensors by the name of the layer that produced them in the reference
graph, so the Cast, Q/DQ and FakeQuantize nodes that a precision conversion inserts, which
the reference has no counterpart for, drop out by themselves.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from deploybench.errors import UnknownNameError, UnsupportedError

TAPS: dict[str, str] = {
    "onnxruntime": "deploybench.triage.onnx_tap:OnnxRuntimeTap",
    "openvino": "deploybench.triage.openvino_tap:OpenVinoTap",
}


@dataclass(frozen=True)
class GraphLayer:
    """A layer of the reference graph whose output the candidate also exposes."""

    name: str
    op: str
    module: str | None
    inputs: tuple[str, ...]  # the layers feeding it (through unmatched nodes, transitively)
    bytes_per_image: int | None  # of its output as the reference computes it; None when unknown


class LayerTap(ABC):
    """Reference and candidate graphs of one model, ready to run with extra outputs."""

    runtime: ClassVar[str]
    format: ClassVar[str]
    # How a keep list reaches this format's converter, in words (shown with the remedy).
    mechanism: ClassVar[str]

    @abstractmethod
    def layers(self) -> list[GraphLayer]:
        """Matched layers in the reference graph's topological order."""

    @abstractmethod
    def run(self, inputs: np.ndarray, names: Sequence[str]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """(name, reference tensor, candidate tensor) for each of ``names``, on ``inputs``."""

    @abstractmethod
    def candidate_outputs(self, inputs: np.ndarray) -> list[np.ndarray]:
        """The candidate's model outputs on ``inputs``, as float32."""

    def keep_unsupported(self) -> str | None:
        """Why this candidate cannot be rebuilt with layers kept in FP32, or None when it can."""
        return None

    @abstractmethod
    def keeping(self, keep: Sequence[str]) -> LayerTap:
        """The same reference, with the candidate rebuilt from it keeping ``keep`` in FP32."""

    def close(self) -> None:
        """Release sessions and compiled models."""


def tap_class(runtime: str) -> Any:
    """The tap class for ``runtime``; the backend itself is imported only when the tap opens."""
    if runtime not in TAPS:
        raise UnknownNameError(
            "triage runtime", runtime, TAPS, hint="triage taps intermediate tensors of these runtimes"
        )
    module_name, _, attr = TAPS[runtime].partition(":")
    return getattr(importlib.import_module(module_name), attr)


def default_runtime(fmt: str, runtimes: Iterable[str]) -> str:
    """The first runtime with a tap that loads ``fmt``."""
    for runtime in runtimes:
        if runtime in TAPS and tap_class(runtime).format == fmt:
            return runtime
    raise UnsupportedError(
        f"no triage tap reads {fmt} artifacts; triage supports "
        + ", ".join(f"{tap_class(r).format} ({r})" for r in TAPS)
    )


def producers(
    name: str, direct: Callable[[str], Iterable[str]], is_layer: Callable[[str], bool], memo: dict[str, tuple[str, ...]]
) -> tuple[str, ...]:
    """The layers that feed node ``name``, looking through nodes that are not layers."""
    if name in memo:
        return memo[name]
    memo[name] = ()  # cycles cannot occur in a DAG; this only guards the recursion
    found: list[str] = []
    for parent in direct(name):
        found.extend([parent] if is_layer(parent) else producers(parent, direct, is_layer, memo))
    memo[name] = tuple(dict.fromkeys(found))
    return memo[name]
