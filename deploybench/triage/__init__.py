"""Precision triage: which layer of an FP16/INT8 artifact loses the accuracy, and which layers to keep in FP32.

``triage`` compares every intermediate tensor of the candidate with the FP32 graph in the
same runtime, names the first layer whose error jumps (with its PyTorch module path) and
searches for the smallest set of layers to keep in FP32; ``measure_fix`` re-exports with
that set and measures both artifacts as deployed.
"""

from deploybench.triage.diagnose import TriageOptions, triage
from deploybench.triage.fix import FixOptions, measure_fix
from deploybench.triage.report import FixRow, JumpRule, LayerError, Remedy, Triage

__all__ = [
    "FixOptions",
    "FixRow",
    "JumpRule",
    "LayerError",
    "Remedy",
    "Triage",
    "TriageOptions",
    "measure_fix",
    "triage",
]
