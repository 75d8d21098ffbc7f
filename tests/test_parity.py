"""Parity: each metric against hand-computed values; tolerances by precision; broken exports fail."""

from __future__ import annotations

import numpy as np
import pytest

from deploybench.parity import (
    Detections,
    classification_agreement,
    compare,
    dataset_accuracy,
    detection_agreement,
    iou_matrix,
    match_detections,
    nms,
    output_metrics,
    tolerance_for,
)


def test_output_metrics_by_hand() -> None:
    ref = np.array([[1.0, -2.0, 4.0]])
    cand = np.array([[1.0, -2.5, 4.0]])
    m = output_metrics("out", ref, cand)
    assert m.max_abs_error == pytest.approx(0.5)
    assert m.mean_abs_error == pytest.approx(0.5 / 3)
    assert m.norm_error == pytest.approx(0.5 / 4.0)
    assert m.max_rel_error == pytest.approx(0.5 / (2.0 + 4e-6))
    expected_cos = (1 + 5 + 16) / (np.sqrt(21) * np.sqrt(1 + 6.25 + 16))
    assert m.cosine == pytest.approx(expected_cos)
    assert m.nonfinite == 0


def test_output_metrics_of_a_scalar_output() -> None:
    # A 0-d output (a loss, a count) has no images to judge across; its errors are still figures.
    m = output_metrics("out", np.array(2.0), np.array(2.5))
    assert m.max_abs_error == pytest.approx(0.5)
    assert m.max_rel_error == pytest.approx(0.5 / (2.0 + 2e-6))
    assert m.error is None


def test_nan_and_inf_always_fail_even_with_loose_tolerance() -> None:
    ref = [np.ones((2, 10))]
    cand = ref[0].copy()
    cand[0, 3], cand[1, 1] = np.nan, np.inf
    parity = compare(ref, [cand], "classification", "int8")
    assert parity.verdict == "fail"
    assert parity.outputs[0].nonfinite == 2
    assert "NaN/Inf" in parity.reasons[0] and parity.key_figure() == "NaN/Inf"
    # Strict JSON (no bare NaN) so any parser reads the results file.
    import json

    json.dumps(parity.to_dict(), allow_nan=False)


def test_identical_outputs_pass_with_perfect_figures() -> None:
    logits = np.random.default_rng(0).normal(size=(8, 1000))
    parity = compare([logits], [logits.copy()], "classification", "fp32")
    assert parity.passed and parity.task["top1_agreement"] == 1.0 and parity.task["top5_overlap"] == 1.0
    assert parity.key_figure().startswith("top1 100%")


def test_tolerance_depends_on_precision() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(8, 100))
    noisy = ref + rng.normal(scale=0.01, size=ref.shape)  # ~0.3 % of the range: bf16-sized error
    assert compare([ref], [noisy], "other", "fp32").verdict == "fail"
    assert compare([ref], [noisy], "other", "bf16").verdict == "pass"
    # Overrides win over the defaults.
    assert compare([ref], [noisy], "other", "fp32", {"max_error": 0.1, "max_spread_error": 0.1}).verdict == "pass"


def test_top1_and_top5_by_hand() -> None:
    ref = np.array([[5, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5]], dtype=float)
    cand = np.array([[4, 5, 3, 2, 0, 1], [0, 1, 2, 3, 4, 5]], dtype=float)
    agreement = classification_agreement(ref, cand)
    assert agreement["top1_agreement"] == 0.5
    # image 0: ref top5 {0,1,2,3,4}, cand top5 {1,0,2,3,5} -> 4/5 overlap; image 1: 5/5
    assert agreement["top5_overlap"] == pytest.approx((0.8 + 1.0) / 2)


def test_shape_mismatch_fails() -> None:
    parity = compare([np.zeros((2, 10))], [np.zeros((2, 11))], "classification", "fp32")
    assert parity.verdict == "fail" and "shape" in parity.reasons[0]


def test_iou_and_nms_by_hand() -> None:
    a = np.array([[0, 0, 10, 10]], dtype=float)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]], dtype=float)
    np.testing.assert_allclose(iou_matrix(a, b), [[50 / 150, 0.0]])
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30]], dtype=float)
    assert nms(boxes, np.array([0.9, 0.8, 0.7]), 0.5).tolist() == [0, 2]


def test_detection_matching_needs_same_class_and_iou() -> None:
    ref = Detections(np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float), np.array([0.9, 0.8]), np.array([1, 2]))
    cand = Detections(np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float), np.array([0.9, 0.8]), np.array([1, 3]))
    assert match_detections(ref, cand) == (1, 2, 2)


def _yolo_head(
    boxes: list[tuple[float, float, float, float, int, float]], classes: int = 3, anchors: int = 50
) -> np.ndarray:
    head = np.zeros((4 + classes, anchors))
    head[:4] = 1.0  # tiny boxes far from the real ones
    for i, (cx, cy, w, h, cls, score) in enumerate(boxes):
        head[:4, i] = (cx, cy, w, h)
        head[4 + cls, i] = score
    return head


def test_detection_agreement_catches_a_moved_box() -> None:
    ref = _yolo_head([(50, 50, 20, 20, 0, 0.9), (150, 150, 30, 30, 1, 0.8)])
    moved = _yolo_head([(50, 50, 20, 20, 0, 0.9), (190, 190, 30, 30, 1, 0.8)])
    same = detection_agreement(ref[None], ref[None], keep_at_least=2)
    assert same["recall"] == 1.0 and same["precision"] == 1.0 and same["reference_detections"] == 2
    off = detection_agreement(ref[None], moved[None], keep_at_least=2)
    assert off["recall"] == 0.5


def test_detection_verdict_on_perturbed_heads() -> None:
    rng = np.random.default_rng(3)
    head = rng.uniform(0, 1, size=(1, 84, 400)).astype(np.float32)
    head[:, :4] *= 600
    scrambled = head.copy()
    scrambled[:, :4] = rng.permutation(scrambled[0, :4].T).T[None]  # boxes shuffled between anchors
    assert compare([head], [head.copy()], "detection", "fp32").passed
    parity = compare(
        [head],
        [scrambled],
        "detection",
        "fp32",
        {"max_error": 10, "max_spread_error": 10, "max_gain_error": 1, "max_offset": 10, "decisive_margin": 0},
    )
    assert parity.verdict == "fail" and parity.reasons


def test_dataset_accuracy_and_delta() -> None:
    labels = np.array([0, 1, 2, 1])
    ref = np.eye(3)[[0, 1, 2, 0]]  # 3 of 4 right
    cand = np.eye(3)[[0, 1, 2, 1]]  # 4 of 4 right
    acc = dataset_accuracy(cand, labels, ref)
    assert acc["top1"] == 1.0 and acc["reference_top1"] == 0.75 and acc["delta_top1"] == pytest.approx(0.25)


def test_default_tolerances_loosen_with_precision() -> None:
    order = ["fp32", "fp16", "bf16", "int8"]
    errors = [tolerance_for(p).max_error for p in order]
    assert errors == sorted(errors)


def test_mixed_precision_gets_its_loosest_parts_tolerance() -> None:
    assert tolerance_for("int8+fp16") == tolerance_for("int8")
    assert tolerance_for("fp16+fp32") == tolerance_for("fp16")


def test_readme_tolerance_table_matches_the_defaults() -> None:
    """The README's tolerance table is the code's defaults, not a copy that drifted."""
    import re
    from pathlib import Path

    from deploybench.parity import DEFAULT_TOLERANCES

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| (fp32|tf32|fp16|bf16|int8) \| (.+) \|$", readme, re.M)}
    assert set(rows) == set(DEFAULT_TOLERANCES)
    for precision, text in rows.items():
        cells = [c.strip() for c in text.split("|")]
        tol = DEFAULT_TOLERANCES[precision]
        numbers = [float(c.rstrip(" %")) / (100 if c.endswith("%") else 1) for c in cells]
        assert numbers == pytest.approx(
            [tol.max_error, tol.max_spread_error, tol.max_gain_error, tol.max_offset, tol.min_top1, tol.min_recall]
        ), precision


def test_an_output_that_varies_only_by_rounding_is_inconclusive_not_failed() -> None:
    """A random YOLO head's boxes differ across images by float32 rounding alone; a faithful
    candidate's own rounding must not be read as a gain (seen: AOTI yolov8n 'scaled by 0.176')."""
    rng = np.random.default_rng(0)
    anchors = rng.uniform(0, 640, size=(1, 4, 500))
    reference = (anchors + rng.normal(scale=3e-6, size=(8, 4, 500))).astype(np.float32)
    candidate = (anchors + rng.normal(scale=3e-6, size=(8, 4, 500))).astype(np.float32)
    parity = compare([reference], [candidate], "other", "fp32")
    assert parity.verdict == "inconclusive" and "does not vary" in parity.reasons[0]
    assert compare([reference], [np.roll(reference, 1, axis=0) * 1.05], "other", "fp32").verdict == "fail"


def test_mixups_count_the_images_nearer_another_images_reference() -> None:
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(6, 2, 50))
    faithful = ref + rng.normal(scale=1e-3, size=ref.shape)
    assert output_metrics("out", ref, faithful).mixups == 0
    swapped = faithful[[1, 0, 2, 3, 4, 5]]  # two images' outputs exchanged
    assert output_metrics("out", ref, swapped).mixups == 2
    rotated = faithful[[1, 2, 0, 3, 4, 5]]  # a stale input shifts three
    assert output_metrics("out", ref, rotated).mixups == 3
