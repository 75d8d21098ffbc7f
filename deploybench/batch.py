"""A batch of model inputs: one array, or a tuple of arrays for a model with several inputs.

Most models take one image tensor, and everything that moves inputs around (tiling to a
batch size, chunking parity inputs, saving references) keeps that case a plain array. An
ONNX file may declare several inputs; its batch is then a tuple in the graph's input order,
every array sharing the leading batch axis. These helpers treat both alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Batch = np.ndarray | tuple[np.ndarray, ...]


def arrays(batch: Batch) -> tuple[np.ndarray, ...]:
    """The batch as one array per model input."""
    return batch if isinstance(batch, tuple) else (batch,)


def single(batch: Batch, who: str) -> np.ndarray:
    """The one array of a single-input batch; ``who`` (a runtime) takes no more."""
    parts = arrays(batch)
    if len(parts) != 1:
        from deploybench.errors import UnsupportedError

        raise UnsupportedError(f"{who} runs models of one input, and this one has {len(parts)}; use onnxruntime")
    return parts[0]


def pack(parts: Sequence[np.ndarray]) -> Batch:
    """One array stays an array; several become a tuple."""
    return parts[0] if len(parts) == 1 else tuple(parts)


def size(batch: Batch) -> int:
    """Images (rows) in the batch."""
    return len(arrays(batch)[0])


def take(batch: Batch, index: slice | np.ndarray) -> Batch:
    """The same rows of every input, contiguous in memory (runtimes share host buffers)."""
    return pack([np.ascontiguousarray(a[index]) for a in arrays(batch)])


def tile(batch: Batch, rows: int) -> Batch:
    """``rows`` rows taken cyclically from ``batch``."""
    return take(batch, np.arange(rows) % size(batch))


def save_arrays(batch: Batch, prefix: str) -> dict[str, np.ndarray]:
    """Keys for ``np.savez``: ``prefix`` for the first input, ``prefix1``, ``prefix2`` … for the rest."""
    return {prefix if i == 0 else f"{prefix}{i}": a for i, a in enumerate(arrays(batch))}


def load_arrays(stored: np.lib.npyio.NpzFile, prefix: str) -> Batch:
    """The batch ``save_arrays`` wrote."""
    parts = [stored[prefix]]
    while f"{prefix}{len(parts)}" in stored.files:
        parts.append(stored[f"{prefix}{len(parts)}"])
    return pack(parts)
