"""Runtimes that allocate a large host buffer in one known place, for the memory-window tests.

Registered on import, so an isolated worker that imports this module (``plugin_modules``)
finds them too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deploybench import registry
from deploybench.runtimes.torch_eager import TorchEagerRuntime

BALLAST_MB = 400


def touched_ballast() -> np.ndarray:
    """``BALLAST_MB`` of resident memory (every page written)."""
    ballast = np.empty(BALLAST_MB * 2**20, dtype=np.uint8)
    ballast[::4096] = 1
    return ballast


class ParityHeavyRuntime(TorchEagerRuntime):
    """Allocates the ballast only when outputs are read, which only the parity check does."""

    name = "memtest-parity-heavy"
    aliases = ()

    def outputs(self) -> list[np.ndarray]:
        ballast = touched_ballast()
        outputs = super().outputs()
        del ballast
        return outputs


class InferenceHeavyRuntime(TorchEagerRuntime):
    """Allocates the ballast while preparing the timed batch: inference memory, to be counted."""

    name = "memtest-inference-heavy"
    aliases = ()

    def prepare(self, batch: np.ndarray) -> Any:
        self._ballast = touched_ballast()
        return super().prepare(batch)

    def _unload(self) -> None:
        self._ballast = None
        super()._unload()


PLUGINS = (ParityHeavyRuntime, InferenceHeavyRuntime)
for plugin in PLUGINS:
    registry.runtimes.register(plugin)
