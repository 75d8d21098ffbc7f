"""Numerical parity of a candidate's outputs against the PyTorch FP32 reference.

Per output: max/mean absolute error, max relative error, error normalised by the
reference's largest magnitude, cosine similarity, NaN/Inf. Task checks on the first
output: top-1 agreement and top-5 overlap for classifiers; for detectors, boxes after
NMS matched to the reference's by class and IoU (recall and precision).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    max_norm_error: float  # max |a-b| / max |ref|
    min_cosine: float
    min_top1: float  # classification: share of images whose top-1 class agrees
    min_recall: float  # detection: share of reference boxes found again


# By the precision the runtime really used; overridable per run.
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(max_norm_error=1e-3, min_cosine=0.9999, min_top1=0.95, min_recall=0.95),
    "tf32": Tolerance(max_norm_error=1e-2, min_cosine=0.999, min_top1=0.9, min_recall=0.9),
    "fp16": Tolerance(max_norm_error=5e-2, min_cosine=0.999, min_top1=0.9, min_recall=0.9),
    "bf16": Tolerance(max_norm_error=1e-1, min_cosine=0.995, min_top1=0.8, min_recall=0.8),
    "int8": Tolerance(max_norm_error=3e-1, min_cosine=0.98, min_top1=0.6, min_recall=0.6),
}


def tolerance_for(precision: str, overrides: dict[str, float] | None = None) -> Tolerance:
    """The default tolerance of ``precision``; a mix such as ``int8+fp16`` gets its loosest part's."""
    parts = [DEFAULT_TOLERANCES.get(p, DEFAULT_TOLERANCES["fp32"]) for p in precision.split("+")]
    base = max(parts, key=lambda t: t.max_norm_error)
    return replace(base, **(overrides or {}))


@dataclass
class OutputParity:
    """Error figures of one output; None where NaN/Inf made them meaningless (strict JSON has no NaN)."""

    name: str
    shape: list[int]
    max_abs_error: float | None
    mean_abs_error: float | None
    max_rel_error: float | None
    norm_error: float | None
    cosine: float | None
    nonfinite: int


@dataclass
class Parity:
    verdict: str  # pass | fail
    precision: str
    tolerance: dict[str, float]
    outputs: list[OutputParity]
    task: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    accuracy: dict[str, float] | None = None  # with --dataset

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def key_figure(self) -> str:
        """The one number a table shows beside the verdict."""
        if "top1_agreement" in self.task:
            return f"top1 {self.task['top1_agreement']:.0%}"
        if "recall" in self.task:
            return f"recall {self.task['recall']:.0%}"
        cosines = [o.cosine for o in self.outputs if o.cosine is not None]
        if len(cosines) < len(self.outputs):
            return "NaN/Inf"
        return f"cos {min(cosines):.5f}" if cosines else ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Parity":
        data = dict(data)
        data["outputs"] = [OutputParity(**o) for o in data["outputs"]]
        return cls(**data)


def output_metrics(name: str, reference: np.ndarray, candidate: np.ndarray) -> OutputParity:
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    nonfinite = int(np.count_nonzero(~np.isfinite(cand)))
    if nonfinite:
        return OutputParity(name, list(cand.shape), None, None, None, None, None, nonfinite)
    diff = np.abs(ref - cand)
    scale = float(np.max(np.abs(ref))) or 1.0
    denom = np.linalg.norm(ref) * np.linalg.norm(cand)
    cosine = float(np.dot(ref.ravel(), cand.ravel()) / denom) if denom > 0 else float(np.array_equal(ref, cand))
    return OutputParity(name=name, shape=list(cand.shape), max_abs_error=float(diff.max()),
                        mean_abs_error=float(diff.mean()),
                        max_rel_error=float(np.max(diff / (np.abs(ref) + 1e-6 * scale))),
                        norm_error=float(diff.max()) / scale, cosine=cosine, nonfinite=0)


def classification_agreement(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Top-1 agreement and mean top-5 overlap between two (N, classes) score arrays."""
    k = min(5, reference.shape[1])
    ref_top = np.argsort(-reference, axis=1)[:, :k]
    cand_top = np.argsort(-candidate, axis=1)[:, :k]
    top1 = float(np.mean(ref_top[:, 0] == cand_top[:, 0]))
    overlap = float(np.mean([len(set(r) & set(c)) / k for r, c in zip(ref_top, cand_top)]))
    return {"top1_agreement": top1, "top5_overlap": overlap}


def topk_accuracy(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Top-1 and top-5 accuracy of (N, classes) scores against integer labels."""
    k = min(5, scores.shape[1])
    top = np.argsort(-scores, axis=1)[:, :k]
    return {"top1": float(np.mean(top[:, 0] == labels)), "top5": float(np.mean((top == labels[:, None]).any(axis=1)))}


def dataset_accuracy(scores: np.ndarray, labels: np.ndarray, reference_scores: np.ndarray) -> dict[str, float]:
    """Task accuracy of a candidate beside the reference's, with the top-1 delta."""
    mine, ref = topk_accuracy(scores, labels), topk_accuracy(reference_scores, labels)
    return {**mine, "reference_top1": ref["top1"], "reference_top5": ref["top5"],
            "delta_top1": mine["top1"] - ref["top1"], "images": float(len(labels))}


# -- detection -------------------------------------------------------------------------

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
            order = order[iou_matrix(boxes[best:best + 1], boxes[order])[0] <= iou_threshold]
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


def detection_agreement(reference: np.ndarray, candidate: np.ndarray, conf: float = 0.25,
                        keep_at_least: int = 100) -> dict[str, float]:
    """Recall and precision of the candidate's detections against the reference's.

    Randomly initialised heads score every box low, so the confidence threshold drops
    (per image) until the reference keeps ``keep_at_least`` candidates; the same threshold
    applies to the candidate.
    """
    matched = ref_total = cand_total = 0
    for ref_head, cand_head in zip(reference, candidate):
        ref_scores = np.sort(ref_head[4:].max(axis=0))[::-1]
        threshold = min(conf, float(ref_scores[min(keep_at_least, len(ref_scores)) - 1]) - 1e-12)
        m, r, c = match_detections(decode_yolo(ref_head, threshold), decode_yolo(cand_head, threshold))
        matched, ref_total, cand_total = matched + m, ref_total + r, cand_total + c
    return {"recall": matched / ref_total if ref_total else 1.0,
            "precision": matched / cand_total if cand_total else 1.0,
            "reference_detections": float(ref_total)}


# -- the verdict -------------------------------------------------------------------------

def compare(reference: list[np.ndarray], candidate: list[np.ndarray], task: str, precision: str,
            overrides: dict[str, float] | None = None) -> Parity:
    """Compare every output and apply the precision's tolerance (NaN/Inf always fails)."""
    tolerance = tolerance_for(precision, overrides)
    reasons: list[str] = []
    if len(reference) != len(candidate):
        reasons.append(f"{len(candidate)} outputs, the reference has {len(reference)}")
    outputs = []
    for index, (ref, cand) in enumerate(zip(reference, candidate)):
        name = f"output{index}"
        if ref.shape != cand.shape:
            reasons.append(f"{name} has shape {list(cand.shape)}, the reference {list(ref.shape)}")
            continue
        metrics = output_metrics(name, ref, cand)
        outputs.append(metrics)
        if metrics.nonfinite:
            reasons.append(f"{name} has {metrics.nonfinite} NaN/Inf values")
        elif metrics.norm_error > tolerance.max_norm_error:
            reasons.append(f"{name} error {metrics.norm_error:.2e} of its range > {tolerance.max_norm_error:.0e}")
        elif metrics.cosine < tolerance.min_cosine:
            reasons.append(f"{name} cosine {metrics.cosine:.6f} < {tolerance.min_cosine}")
    task_metrics: dict[str, float] = {}
    if not reasons and reference:
        first_ref, first_cand = reference[0], candidate[0]
        if task == "classification" and first_ref.ndim == 2:
            task_metrics = classification_agreement(first_ref, first_cand)
            if task_metrics["top1_agreement"] < tolerance.min_top1:
                reasons.append(f"top-1 agreement {task_metrics['top1_agreement']:.0%} < {tolerance.min_top1:.0%}")
        elif task == "detection" and first_ref.ndim == 3:
            task_metrics = detection_agreement(first_ref, first_cand)
            if task_metrics["recall"] < tolerance.min_recall:
                reasons.append(f"detection recall {task_metrics['recall']:.0%} < {tolerance.min_recall:.0%}")
    return Parity(verdict="fail" if reasons else "pass", precision=precision, tolerance=asdict(tolerance),
                  outputs=outputs, task=task_metrics, reasons=reasons)
