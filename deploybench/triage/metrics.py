"""Per-layer error figures for precision triage.

Three small functions, kept apart from the output comparator so they can later share one
home with it: an error normalised by the reference tensor's spread, a centred cosine, and
the growth of a layer's error over the errors of its inputs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

# Below this relative error a layer's inputs count as exact: growth is measured from here,
# so the first layers of a graph do not show an infinite "jump" out of rounding noise.
ERROR_FLOOR = 1e-4


def nonfinite_count(candidate: np.ndarray) -> int:
    return int(np.count_nonzero(~np.isfinite(candidate)))


def spread_normalised_error(reference: np.ndarray, candidate: np.ndarray) -> float:
    """RMS of ``candidate - reference`` over the reference's standard deviation.

    The spread, not the largest magnitude, is the scale: a tensor whose values share a large
    constant offset would otherwise hide a real error. Infinite when the candidate has NaN/Inf.
    """
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if nonfinite_count(cand):
        return math.inf
    rms = float(np.sqrt(np.mean((cand - ref) ** 2)))
    spread = float(np.std(ref))
    if spread == 0.0:  # a constant tensor: any difference is a full-scale error
        return 0.0 if rms == 0.0 else math.inf
    return rms / spread


def centred_cosine(reference: np.ndarray, candidate: np.ndarray) -> float | None:
    """Cosine between the two tensors after removing the reference's mean over images (axis 0).

    What every image shares (biases, constant maps) would make the plain cosine look perfect;
    centring keeps the part that depends on the input. With one image the global mean goes.
    None when the candidate has NaN/Inf or the reference does not vary.
    """
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if nonfinite_count(cand):
        return None
    mean = ref.mean(axis=0, keepdims=True) if ref.ndim > 1 and ref.shape[0] > 1 else ref.mean()
    a, b = (ref - mean).ravel(), (cand - mean).ravel()
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    if denom == 0.0:
        return None
    return float(np.dot(a, b) / denom)


def error_growth(layer_error: float, input_errors: Iterable[float]) -> float:
    """How many times the layer's error exceeds the largest error among its inputs.

    Inputs below ``ERROR_FLOOR`` count as the floor. A layer that turns finite inputs into
    NaN/Inf grows infinitely; one that passes on an already infinite error grows 1x.
    """
    worst_input = max([ERROR_FLOOR, *input_errors])
    if math.isinf(layer_error):
        return 1.0 if math.isinf(worst_input) else math.inf
    return max(layer_error, ERROR_FLOOR) / worst_input
