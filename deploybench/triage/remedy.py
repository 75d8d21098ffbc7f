"""Search for the smallest set of layers to keep in FP32 that brings the candidate back to parity.

Greedy, then pruned: keep the first layer whose error jumps, rebuild the candidate from
the FP32 graph, walk it again and repeat until parity passes; then drop every kept layer
whose removal still passes. Each step is a real conversion judged on the parity inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from deploybench.triage.report import JumpRule, LayerError
from deploybench.triage.taps import LayerTap
from deploybench.triage.walk import first_jump, walk

MAX_KEPT = 12  # beyond this, keeping layers one by one is not the fix: the format is the problem

Judge = Callable[[list[np.ndarray]], tuple[bool, str]]  # candidate outputs -> (passed, verdict in words)


@dataclass
class KeepSearch:
    keep: list[str]
    passed: bool
    verdict: str
    trials: int
    why_not: str = ""  # when it stopped without passing
    kept_layers: list[LayerError] = field(default_factory=list)


def search_keep_set(
    tap: LayerTap,
    inputs: np.ndarray,
    rule: JumpRule,
    judge: Judge,
    first: LayerError | None,
    progress: Callable[[str], None] = lambda m: None,
    max_kept: int = MAX_KEPT,
) -> KeepSearch:
    """The smallest keep list found, starting from the triaged candidate's first jump."""
    keep: list[LayerError] = []
    trials = 0
    passed, verdict = False, ""
    jump = first
    while jump is not None and len(keep) < max_kept:
        keep.append(jump)
        progress(f"trying {len(keep)} layer(s) in FP32: {', '.join(layer.name for layer in keep)}")
        trial = tap.keeping([layer.name for layer in keep])
        try:
            trials += 1
            passed, verdict = judge(trial.candidate_outputs(inputs))
            progress(f"  parity: {verdict}")
            if passed:
                break
            found = walk(trial, inputs, rule)
            jump = first_jump(found.layers, rule, skip=frozenset(layer.name for layer in keep))
        finally:
            trial.close()
    if not passed:
        why = (
            "no layer's error jumps any more"
            if jump is None
            else f"{max_kept} layers kept and parity still fails; the whole graph needs a higher precision"
        )
        return KeepSearch([layer.name for layer in keep], False, verdict, trials, why, keep)
    # Prune: a layer kept early may have been needed only until a later one was kept too.
    for layer in list(keep[:-1]):
        rest = [k for k in keep if k is not layer]
        trial = tap.keeping([k.name for k in rest])
        try:
            trials += 1
            ok, text = judge(trial.candidate_outputs(inputs))
        finally:
            trial.close()
        if ok:
            keep, verdict = rest, text
    return KeepSearch([layer.name for layer in keep], True, verdict, trials, kept_layers=keep)
