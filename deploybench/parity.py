"""Numerical parity of a candidate's outputs against the PyTorch FP32 reference.

Random weights and look-alike inputs give outputs that hardly depend on the image: most
of an output is a part every image shares. A global error or cosine is dominated by that
shared part, so a candidate that ignores its input can look faithful. Every figure here
is therefore taken per image and judged against the part of the output that depends on
the input:

- ``error``: an image's RMS error over the output's RMS — what the precision can produce;
- ``spread_error``: the same error over the output's *spread across images* (its
  input-dependent part, per channel group where an output mixes quantities);
- ``centered_cosine``: the cosine of candidate and reference after removing the mean
  image, so the shared part cannot carry it;
- structural checks that no precision explains: an image that matches another image's
  reference better than its own (batch mix-up, stale buffer), an output that no longer
  varies with the input (constant), and a gain or offset that the residual noise cannot
  explain (scaled, shifted).

Three verdicts. ``fail``: a check above, a task check on decisive images, NaN/Inf or a
shape. ``pass``: every image tracks its own reference within the tolerance. Otherwise
``inconclusive``, always with its reason: the inputs cannot tell a faithful artifact from
a broken one at this precision (typically random weights).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from deploybench.errors import UsageError

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
VERDICTS = (PASS, FAIL, INCONCLUSIVE)
WEIGHTS_HINT = "pass --pretrained, --checkpoint PATH or --images DIR"


@dataclass(frozen=True)
class Tolerance:
    """What a faithful artifact at one precision may show, per output (group)."""

    max_error: float  # per-image RMS error / the output's RMS
    max_spread_error: float  # per-image RMS error / the output's spread across images; above: inconclusive
    max_gain_error: float  # |gain - 1| of the candidate's input-dependent part against the reference's
    max_offset: float  # |mean(candidate - reference)| / the output's RMS
    min_top1: float  # classification: agreement on the decisive images
    min_recall: float  # detection: decisive reference boxes found again
    decisive_margin: float = 4.0  # a decisive image's top-1 margin, in units of max_error x the output's RMS


# By the precision the runtime really used; overridable per run (``--tolerance KEY=VALUE``).
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(
        max_error=1e-3, max_spread_error=0.01, max_gain_error=1e-3, max_offset=1e-3, min_top1=1.0, min_recall=0.98
    ),
    "tf32": Tolerance(
        max_error=1e-2, max_spread_error=0.1, max_gain_error=0.01, max_offset=0.005, min_top1=0.95, min_recall=0.95
    ),
    "fp16": Tolerance(
        max_error=2e-2, max_spread_error=0.15, max_gain_error=0.01, max_offset=0.01, min_top1=0.95, min_recall=0.95
    ),
    "bf16": Tolerance(
        max_error=6e-2, max_spread_error=0.3, max_gain_error=0.02, max_offset=0.02, min_top1=0.9, min_recall=0.9
    ),
    "int8": Tolerance(
        max_error=0.35, max_spread_error=0.5, max_gain_error=0.04, max_offset=0.03, min_top1=0.9, min_recall=0.9
    ),
}

# Valid ranges of each tolerance key (inclusive), for --tolerance.
TOLERANCE_RANGES: dict[str, tuple[float, float]] = {
    "max_error": (0.0, 10.0),
    "max_spread_error": (0.0, 10.0),
    "max_gain_error": (0.0, 1.0),
    "max_offset": (0.0, 10.0),
    "min_top1": (0.0, 1.0),
    "min_recall": (0.0, 1.0),
    "decisive_margin": (0.0, 100.0),
}
# An output whose candidate varies across images by less than this share of the reference's
# variation no longer depends on its input.
MIN_SPREAD_RATIO = 0.25
# A candidate image nearer than this share of its own distance to another image's reference is a mix-up.
MIXUP_RATIO = 0.5
# Gains and offsets fail only beyond this many standard errors of what the residual noise explains.
SIGNIFICANCE = 3.0
# An output whose spread across images is below this share of its RMS (about 100 float32 ulps)
# does not vary with the input at all: its "variation" is rounding.
FLOAT32_RESOLUTION = 1e-5


def tolerance_for(precision: str, overrides: dict[str, float] | None = None) -> Tolerance:
    """The default tolerance of ``precision``; a mix such as ``int8+fp16`` gets its loosest part's."""
    parts = [DEFAULT_TOLERANCES.get(p, DEFAULT_TOLERANCES["fp32"]) for p in precision.split("+")]
    base = max(parts, key=lambda t: t.max_error)
    return replace(base, **(overrides or {}))


def parse_tolerance_overrides(items: tuple[str, ...] | list[str]) -> dict[str, float]:
    """``["max_error=0.05", ...]`` -> overrides, refusing unknown keys, non-finite or out-of-range values."""
    valid = ", ".join(f"{k} in [{lo:g}, {hi:g}]" for k, (lo, hi) in TOLERANCE_RANGES.items())
    result: dict[str, float] = {}
    for item in items:
        key, _, text = item.partition("=")
        key = key.strip()
        if key not in TOLERANCE_RANGES or not text.strip():
            raise UsageError(f"malformed tolerance {item!r}; write KEY=VALUE with {valid}")
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        lo, hi = TOLERANCE_RANGES[key]
        if not math.isfinite(value) or not lo <= value <= hi:
            raise UsageError(f"tolerance {item!r} is out of range; {key} takes a number in [{lo:g}, {hi:g}]")
        result[key] = value
    return result


@dataclass
class OutputParity:
    """Figures of one output (or one channel group of it); None where NaN/Inf made them meaningless."""

    name: str
    shape: list[int]
    max_abs_error: float | None
    mean_abs_error: float | None
    max_rel_error: float | None
    norm_error: float | None  # max |a-b| / max |ref| (the figure before per-image metrics)
    cosine: float | None  # uncentred, whole output (the figure before per-image metrics)
    nonfinite: int
    error: float | None = None  # worst image: RMS error / the output's RMS
    spread_error: float | None = None  # worst image: RMS error / the output's spread across images
    centered_cosine: float | None = None  # worst image, mean image removed
    spread_ratio: float | None = None  # the reference's spread across images / its RMS
    candidate_spread: float | None = None  # the candidate's spread across images / the reference's
    gain: float | None = None  # candidate's input-dependent part against the reference's
    offset: float | None = None  # mean(candidate - reference) / the output's RMS
    mixups: int = 0  # images nearer another image's reference than their own


@dataclass
class Parity:
    verdict: str  # pass | fail | inconclusive
    precision: str
    tolerance: dict[str, float]
    outputs: list[OutputParity]
    task: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)  # why it failed, or why it is inconclusive
    accuracy: dict[str, float] | None = None  # with --dataset
    inputs: str = ""  # what the parity inputs were (photos, user images, seeded noise)

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    def key_figure(self) -> str:
        """The one number a table shows beside the verdict."""
        if any(o.nonfinite for o in self.outputs):
            return "NaN/Inf"
        task = self.task
        if "decisive_images" in task:
            decisive, images = int(task["decisive_images"]), int(task["images"])
            if not decisive:
                return f"top1 n/a, 0/{images} decisive"
            return f"top1 {task['top1_agreement']:.0%} of {decisive}/{images}"
        if "decisive_detections" in task:
            if not task["decisive_detections"]:
                return "recall n/a, 0 decisive"
            return f"recall {task['recall']:.0%} of {int(task['decisive_detections'])}"
        errors = [o.spread_error for o in self.outputs if o.spread_error is not None]
        return f"spread err {max(errors):.2g}" if errors else ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Parity:
        data = dict(data)
        known = {f.name for f in fields(OutputParity)}
        data["outputs"] = [OutputParity(**{k: v for k, v in o.items() if k in known}) for o in data["outputs"]]
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# -- per-output figures ------------------------------------------------------------------


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.vdot(values, values) / values.size)) if values.size else 0.0


def _row_squares(values: np.ndarray) -> np.ndarray:
    """Sum of squares of each row of a 2-D array, without a squared copy."""
    return np.einsum("ij,ij->i", values, values)


def _mixups(reference: np.ndarray, candidate: np.ndarray, own: np.ndarray) -> int:
    """How many images lie nearer another image's reference than ``MIXUP_RATIO`` of their own
    distance. Rows are images (2-D arrays); ``own`` holds each row's squared distance to its own
    reference row (``_row_squares(candidate - reference)``)."""
    n = len(reference)
    cross = np.full((n, n), np.inf)  # the diagonal stays inf: an image is not its own mix-up
    # Direct differences, not |a|^2 + |b|^2 - 2ab: that cancels catastrophically when the
    # images' outputs differ by far less than their magnitude. One image pair at a time: a
    # whole-batch difference per image is a fresh array of the output's size (a YOLO head's
    # 43 MB in float64), and faulting in fresh pages cost more than the arithmetic.
    difference = np.empty_like(candidate[0])
    for i in range(n):
        for j in range(n):
            if i != j:
                np.subtract(candidate[i], reference[j], out=difference)
                cross[i, j] = np.vdot(difference, difference)
    nearest = cross.min(axis=1)
    return int(np.count_nonzero(nearest < (MIXUP_RATIO**2) * own))


def output_metrics(name: str, reference: np.ndarray, candidate: np.ndarray) -> OutputParity:
    """Every figure of one output; the first axis holds the images.

    Outputs reach millions of values (a YOLO head at batch 8), so each array is made once
    and sums of products are taken without the product's copy.
    """
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    nonfinite = int(cand.size - np.count_nonzero(np.isfinite(cand)))
    if nonfinite:
        return OutputParity(name, list(cand.shape), None, None, None, None, None, nonfinite)
    delta = cand - ref
    diff = np.abs(delta)
    magnitude = np.abs(ref, out=np.empty_like(ref))  # an array even for a 0-d output: divided in place below
    peak = float(magnitude.max()) if ref.size else 0.0
    denom = math.sqrt(np.vdot(ref, ref)) * math.sqrt(np.vdot(cand, cand))
    cosine = float(np.vdot(ref, cand) / denom) if denom > 0 else float(np.array_equal(ref, cand))
    magnitude += 1e-6 * (peak or 1.0)
    relative = np.divide(diff, magnitude, out=magnitude)
    metrics = OutputParity(
        name=name,
        shape=list(cand.shape),
        max_abs_error=float(diff.max(initial=0.0)),
        mean_abs_error=float(diff.mean()) if diff.size else 0.0,
        max_rel_error=float(relative.max(initial=0.0)),
        norm_error=float(diff.max(initial=0.0)) / (peak or 1.0),
        cosine=cosine,
        nonfinite=0,
    )
    del diff, relative
    if ref.ndim == 0 or ref.shape[0] == 0:
        return metrics
    r, c, d = ref.reshape(len(ref), -1), cand.reshape(len(cand), -1), delta.reshape(len(delta), -1)
    scale = _rms(r) or 1.0
    own = _row_squares(d)  # each image's squared error
    image_errors = np.sqrt(own / d.shape[1])
    metrics.error = float(image_errors.max()) / scale
    metrics.offset = float(d.mean()) / scale
    mean_image = r.mean(axis=0)
    r_dev = r - mean_image
    spread = _rms(r_dev)
    metrics.spread_ratio = spread / scale
    if len(r) < 2 or spread <= FLOAT32_RESOLUTION * scale:
        # One image, or an output whose variation across images is float32 rounding itself:
        # nothing input-dependent to judge (a gain or a nearest image would be fitted to noise).
        return metrics
    centred_c = c - mean_image
    c_dev = centred_c - centred_c.mean(axis=0)
    metrics.spread_error = float(image_errors.max()) / spread
    metrics.candidate_spread = _rms(c_dev) / spread
    metrics.gain = float(np.vdot(c_dev, r_dev) / np.vdot(r_dev, r_dev))
    norms = np.sqrt(_row_squares(centred_c)) * np.sqrt(_row_squares(r_dev))
    dots = np.einsum("ij,ij->i", centred_c, r_dev)
    cosines = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 0.0)
    metrics.centered_cosine = float(cosines.min())
    metrics.mixups = _mixups(r, c, own)
    return metrics


def _channel_offsets(reference: np.ndarray, candidate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per channel (axis 1 of outputs with channels and positions; else the whole output): the mean
    offset over the output's RMS, and its standard error from the residual noise, images being
    the independent units."""
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(candidate, dtype=np.float64)
    scale = _rms(r) or 1.0
    if r.ndim < 3:
        r, c = r.reshape(len(r), 1, -1), c.reshape(len(c), 1, -1)
    else:
        r, c = r.reshape(*r.shape[:2], -1), c.reshape(*c.shape[:2], -1)
    diff = c - r
    offsets = diff.mean(axis=(0, 2))
    diff -= offsets[None, :, None]
    residual = np.sqrt(np.einsum("ijk,ijk->j", diff, diff) / (diff.shape[0] * diff.shape[2]))
    return offsets / scale, residual / scale / math.sqrt(len(r))


def _gain_noise(reference: np.ndarray, candidate: np.ndarray, gain: float) -> float:
    """Standard error of the gain from the residual noise; images are the independent units."""
    r = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    c = np.asarray(candidate, dtype=np.float64).reshape(len(candidate), -1)
    r_dev, c_dev = r - r.mean(axis=0), c - c.mean(axis=0)
    spread = _rms(r_dev)
    c_dev -= np.multiply(r_dev, gain, out=r_dev)  # in place: no third array of the output's size
    return _rms(c_dev) / (spread * math.sqrt(len(r)))


def judge_output(
    reference: np.ndarray, candidate: np.ndarray, metrics: OutputParity, tolerance: Tolerance, precision: str
) -> tuple[list[str], list[str]]:
    """(reasons it fails, reasons it is inconclusive) for one output or channel group."""
    name = metrics.name
    if metrics.nonfinite:
        return [f"{name} has {metrics.nonfinite} NaN/Inf values"], []
    if metrics.error is None:
        return [], []
    failures: list[str] = []
    if metrics.error > tolerance.max_error:
        failures.append(
            f"{name}: an image's error is {metrics.error:.2g} of the output's RMS, more than "
            f"{precision} produces ({tolerance.max_error:g})"
        )
    if metrics.mixups:
        failures.append(
            f"{name}: {metrics.mixups} of {len(reference)} images match another image's reference "
            "better than their own (batch mix-up or stale input)"
        )
    # An honest low-precision artifact may flatten an output whose spread across images is
    # below the precision's error; an exactly constant one is never honest.
    spread_above_error = (metrics.spread_ratio or 0.0) >= tolerance.max_error
    collapsed = metrics.candidate_spread is not None and metrics.candidate_spread < MIN_SPREAD_RATIO
    if collapsed and (spread_above_error or (metrics.candidate_spread or 0.0) < 0.01):
        failures.append(
            f"{name} hardly varies with the input ({metrics.candidate_spread:.0%} of the reference's "
            "variation across images): constant output or input ignored"
        )
    if metrics.gain is not None:
        gain_error = abs(metrics.gain - 1.0)
        gain_noise = _gain_noise(reference, candidate, metrics.gain)
        # Coarse precision attenuates a variation smaller than its own error (seen: OpenVINO INT8
        # of a random-weight mobilenetv4, gain 0.64, with noisy residuals): a gain says something
        # only above that error, or when the candidate is a nearly exact scaled copy.
        telling = spread_above_error or gain_noise < tolerance.max_gain_error / 10
        if telling and gain_error > tolerance.max_gain_error and gain_error > SIGNIFICANCE * gain_noise:
            failures.append(
                f"{name} is scaled by {metrics.gain:.4g} against the reference (tolerance {tolerance.max_gain_error:g})"
            )
    offsets, noise = _channel_offsets(reference, candidate)
    # Several channels are several tests: raise the bar so honest noise does not fail one by chance.
    bar = SIGNIFICANCE + math.sqrt(2.0 * math.log(len(offsets))) if len(offsets) > 1 else SIGNIFICANCE
    shifted = np.flatnonzero((np.abs(offsets) > tolerance.max_offset) & (np.abs(offsets) > bar * noise))
    if len(shifted):
        worst = int(shifted[np.argmax(np.abs(offsets[shifted]))])
        where = f" (channel {worst}, {len(shifted)} of {len(offsets)} channels)" if len(offsets) > 1 else ""
        failures.append(
            f"{name} is offset by {offsets[worst]:+.3g} of its RMS{where} (tolerance {tolerance.max_offset:g})"
        )
    if failures:
        return failures, []
    if metrics.spread_error is None:
        if metrics.error == 0.0:
            return [], []  # identical to the reference: faithful whatever the inputs
        return [], [
            f"{name} does not vary across the parity images, so they cannot tell a faithful artifact "
            f"from one that ignores its input; {WEIGHTS_HINT}"
        ]
    if metrics.spread_error > tolerance.max_spread_error:
        return [], [
            f"{name}: errors reach {metrics.spread_error:.2g} of the output's variation across images "
            f"(> {tolerance.max_spread_error:g}); the inputs hardly change the output "
            f"({metrics.spread_ratio:.1%} of its RMS), so {precision} error hides whether it follows the "
            f"input; {WEIGHTS_HINT}"
        ]
    return [], []


def output_groups(task: str, reference: np.ndarray) -> list[tuple[str, Any]]:
    """Channel groups judged on their own scale: a YOLO head's boxes (pixels) and class scores (0..1)."""
    if task == "detection" and reference.ndim == 3 and reference.shape[1] > 4:
        return [("boxes", np.s_[:, :4]), ("scores", np.s_[:, 4:])]
    return [("", np.s_[...])]


# -- task checks -------------------------------------------------------------------------


def classification_agreement(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Top-1 agreement and mean top-5 overlap between two (N, classes) score arrays."""
    k = min(5, reference.shape[1])
    ref_top = np.argsort(-reference, axis=1)[:, :k]
    cand_top = np.argsort(-candidate, axis=1)[:, :k]
    top1 = float(np.mean(ref_top[:, 0] == cand_top[:, 0]))
    overlap = float(np.mean([len(set(r) & set(c)) / k for r, c in zip(ref_top, cand_top)]))
    return {"top1_agreement": top1, "top5_overlap": overlap}


def decisive_classification(reference: np.ndarray, candidate: np.ndarray, tolerance: Tolerance) -> dict[str, float]:
    """Top-1 agreement counted on the images whose reference top-1 margin is well above the
    precision's error (``decisive_margin`` x ``max_error`` x the logits' RMS)."""
    ref = np.asarray(reference, dtype=np.float64)
    ordered = np.sort(ref, axis=1)
    margins = ordered[:, -1] - ordered[:, -2] if ref.shape[1] > 1 else np.full(len(ref), np.inf)
    needed = tolerance.decisive_margin * tolerance.max_error * (_rms(ref) or 1.0)
    decisive = margins > needed
    agree = np.argmax(ref, axis=1) == np.argmax(candidate, axis=1)
    figures = classification_agreement(reference, candidate)
    figures.update(
        images=float(len(ref)),
        decisive_images=float(decisive.sum()),
        top1_agreement=float(agree[decisive].mean()) if decisive.any() else 1.0,
        top1_all=figures["top1_agreement"],
    )
    return figures


def topk_accuracy(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Top-1 and top-5 accuracy of (N, classes) scores against integer labels."""
    k = min(5, scores.shape[1])
    top = np.argsort(-scores, axis=1)[:, :k]
    return {"top1": float(np.mean(top[:, 0] == labels)), "top5": float(np.mean((top == labels[:, None]).any(axis=1)))}


def dataset_accuracy(scores: np.ndarray, labels: np.ndarray, reference_scores: np.ndarray) -> dict[str, float]:
    """Task accuracy of a candidate beside the reference's, with the top-1 delta."""
    mine, ref = topk_accuracy(scores, labels), topk_accuracy(reference_scores, labels)
    return {
        **mine,
        "reference_top1": ref["top1"],
        "reference_top5": ref["top5"],
        "delta_top1": mine["top1"] - ref["top1"],
        "images": float(len(labels)),
    }


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between every box of ``a`` and of ``b`` (x1, y1, x2, y2)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    order = np.argsort(-scores)
    keep = []
    while len(order):
        best, order = order[0], order[1:]
        keep.append(best)
        if len(order):
            order = order[iou_matrix(boxes[best : best + 1], boxes[order])[0] <= iou_threshold]
    return np.asarray(keep, dtype=int)


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray  # (n, 4) xyxy
    scores: np.ndarray
    classes: np.ndarray


def decode_yolo(head: np.ndarray, conf: float, iou: float = 0.45, max_det: int = 300) -> Detections:
    """One image's YOLO head (4 + classes, anchors) -> class-aware NMS detections."""
    xywh, class_scores = head[:4].T, head[4:].T
    scores, classes = class_scores.max(axis=1), class_scores.argmax(axis=1)
    keep = scores > conf
    xywh, scores, classes = xywh[keep], scores[keep], classes[keep]
    boxes = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], axis=1)
    # Offsetting boxes by class makes one NMS call class-aware.
    offset = boxes + classes[:, None] * (boxes.max(initial=0) + 1)
    kept = nms(offset, scores, iou)[:max_det]
    return Detections(boxes[kept], scores[kept], classes[kept])


def match_detections(reference: Detections, candidate: Detections, iou: float = 0.5) -> tuple[int, int, int]:
    """Greedy matching by class and IoU; returns (matched, reference count, candidate count)."""
    ious = iou_matrix(reference.boxes, candidate.boxes)
    used: set[int] = set()
    matched = 0
    for i in np.argsort(-reference.scores):
        for j in np.argsort(-ious[i]) if ious.shape[1] else []:
            if ious[i, j] < iou:
                break
            if j not in used and candidate.classes[j] == reference.classes[i]:
                used.add(j)
                matched += 1
                break
    return matched, len(reference.boxes), len(candidate.boxes)


def _subset(detections: Detections, keep: np.ndarray) -> Detections:
    return Detections(detections.boxes[keep], detections.scores[keep], detections.classes[keep])


def detection_agreement(
    reference: np.ndarray,
    candidate: np.ndarray,
    conf: float = 0.25,
    keep_at_least: int = 100,
    score_margin: float = 0.0,
) -> dict[str, float]:
    """Recall and precision of the candidate's detections against the reference's.

    Randomly initialised heads score every box low, so the confidence threshold drops
    (per image) until the reference keeps ``keep_at_least`` candidates. Only detections
    scoring ``score_margin`` above that threshold are decisive: the other side is decoded
    ``score_margin`` below it, so precision error alone cannot push a box out.
    """
    matched = decisive_ref = cand_matched = decisive_cand = ref_total = 0
    for ref_head, cand_head in zip(reference, candidate):
        ref_scores = np.sort(ref_head[4:].max(axis=0))[::-1]
        threshold = min(conf, float(ref_scores[min(keep_at_least, len(ref_scores)) - 1]) - 1e-12)
        low = threshold - score_margin
        ref_dets, cand_dets = decode_yolo(ref_head, low), decode_yolo(cand_head, low)
        ref_total += int(np.sum(ref_dets.scores > threshold))
        ref_sure = _subset(ref_dets, ref_dets.scores > threshold + score_margin)
        cand_sure = _subset(cand_dets, cand_dets.scores > threshold + score_margin)
        matched += match_detections(ref_sure, cand_dets)[0]
        cand_matched += match_detections(cand_sure, ref_dets)[0]
        decisive_ref += len(ref_sure.boxes)
        decisive_cand += len(cand_sure.boxes)
    return {
        "recall": matched / decisive_ref if decisive_ref else 1.0,
        "precision": cand_matched / decisive_cand if decisive_cand else 1.0,
        "reference_detections": float(ref_total),
        "decisive_detections": float(decisive_ref),
    }


# -- the verdict -------------------------------------------------------------------------


def _task_check(
    task: str, reference: np.ndarray, candidate: np.ndarray, tolerance: Tolerance, scores_rms: float
) -> tuple[dict[str, float], list[str]]:
    """The task figures on the first output and the reasons they fail."""
    if task == "classification" and reference.ndim == 2:
        figures = decisive_classification(reference, candidate, tolerance)
        if figures["decisive_images"] and figures["top1_agreement"] < tolerance.min_top1:
            return figures, [
                f"top-1 agreement {figures['top1_agreement']:.0%} on {int(figures['decisive_images'])} "
                f"decisive images < {tolerance.min_top1:.0%}"
            ]
        return figures, []
    if task == "detection" and reference.ndim == 3 and reference.shape[1] > 4:
        margin = tolerance.decisive_margin * tolerance.max_error * scores_rms
        figures = detection_agreement(reference, candidate, score_margin=margin)
        if figures["decisive_detections"] and figures["recall"] < tolerance.min_recall:
            return figures, [
                f"detection recall {figures['recall']:.0%} of {int(figures['decisive_detections'])} "
                f"decisive boxes < {tolerance.min_recall:.0%}"
            ]
        return figures, []
    return {}, []


def compare(
    reference: list[np.ndarray],
    candidate: list[np.ndarray],
    task: str,
    precision: str,
    overrides: dict[str, float] | None = None,
    inputs: str = "",
) -> Parity:
    """Judge every output (per channel group) and the task check; NaN/Inf always fails."""
    tolerance = tolerance_for(precision, overrides)
    failures: list[str] = []
    doubts: list[str] = []
    if len(reference) != len(candidate):
        failures.append(f"{len(candidate)} outputs, the reference has {len(reference)}")
    outputs: list[OutputParity] = []
    for index, (ref, cand) in enumerate(zip(reference, candidate)):
        name = f"output{index}"
        ref, cand = np.asarray(ref), np.asarray(cand)
        if ref.shape != cand.shape:
            failures.append(f"{name} has shape {list(cand.shape)}, the reference {list(ref.shape)}")
            continue
        for group, part in output_groups(task, ref):
            label = f"{name}[{group}]" if group else name
            # In float64 once: the figures and the judgement each read these arrays.
            ref_part, cand_part = np.asarray(ref[part], np.float64), np.asarray(cand[part], np.float64)
            metrics = output_metrics(label, ref_part, cand_part)
            outputs.append(metrics)
            bad, unsure = judge_output(ref_part, cand_part, metrics, tolerance, precision)
            failures += bad
            doubts += unsure
    task_metrics: dict[str, float] = {}
    if (
        reference
        and candidate
        and np.shape(reference[0]) == np.shape(candidate[0])
        and not any(o.nonfinite for o in outputs)
    ):
        first_ref, first_cand = np.asarray(reference[0]), np.asarray(candidate[0])
        scores_rms = _rms(first_ref[:, 4:].astype(np.float64)) if first_ref.ndim == 3 else 0.0
        task_metrics, task_failures = _task_check(task, first_ref, first_cand, tolerance, scores_rms)
        failures += task_failures
    verdict = FAIL if failures else INCONCLUSIVE if doubts else PASS
    return Parity(
        verdict=verdict,
        precision=precision,
        tolerance=asdict(tolerance),
        outputs=outputs,
        task=task_metrics,
        reasons=failures or doubts,
        inputs=inputs,
    )
