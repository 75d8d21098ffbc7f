"""The dense-peak table, its lookup by device name, and the % of peak arithmetic."""

from __future__ import annotations

import pytest

from deploybench.peak import HOST_BOUND_SHARE, PEAKS, THROUGHPUT_BATCH, find_peak, peak_precision, utilization


@pytest.mark.parametrize(
    "name, multiprocessors, expected",
    [
        ("NVIDIA A100-SXM4-80GB", 108, "A100"),
        ("NVIDIA A100 80GB PCIe", 108, "A100"),
        ("NVIDIA H100 80GB HBM3", 132, "H100 SXM"),
        ("NVIDIA H100 PCIe", 114, "H100 PCIe"),
        ("NVIDIA H200", 132, "H200 SXM"),
        ("NVIDIA L4", 58, "L4"),
        ("Tesla T4", 40, "T4"),
        ("Orin", 16, "Jetson AGX Orin 64GB"),
    ],
)
def test_device_names_as_nvml_prints_them(name: str, multiprocessors: int, expected: str) -> None:
    peak = find_peak(name, multiprocessors)
    assert peak is not None and peak.name == expected


@pytest.mark.parametrize(
    "name, multiprocessors",
    [
        ("NVIDIA H100 NVL", 132),  # other clocks and power: not credited with the SXM's peak
        ("NVIDIA H200 NVL", 132),
        ("Orin", 8),  # an Orin Nano/NX: the name alone would overstate its peak 2-4x
        ("NVIDIA GeForce RTX 4090", 128),
        ("NVIDIA L40S", 142),  # "l4" must match as a word only
    ],
)
def test_devices_without_a_sourced_peak_get_none(name: str, multiprocessors: int) -> None:
    assert find_peak(name, multiprocessors) is None


def test_dense_figures_are_half_the_sparse_datasheet_ones() -> None:
    h100 = find_peak("NVIDIA H100 80GB HBM3")
    assert h100.tflops["fp16"] * 2 == pytest.approx(1979, abs=1) and h100.tflops["int8"] * 2 == 3958
    assert h100.tflops["tf32"] * 2 == pytest.approx(989, abs=1)
    assert find_peak("NVIDIA L4").tflops["int8"] * 2 == 485
    # Tensor Core rates never fall below the CUDA-core FP32 rate, on every device of the table.
    for peak in PEAKS:
        assert all(value >= peak.tflops["fp32"] for value in peak.tflops.values()), peak.name


def test_a_mixed_engine_is_judged_against_its_fastest_precision() -> None:
    h100 = find_peak("NVIDIA H100 80GB HBM3")
    assert peak_precision("int8+fp16", h100) == "int8"
    assert peak_precision("fp32", h100) == "fp32"
    assert peak_precision("bf16", find_peak("Tesla T4")) is None  # Turing has no BF16


def test_achieved_tflops_and_share_of_peak() -> None:
    # resnet50 at 8.18 GFLOPs per image, 10,000 images/s in fp16 on an H100 SXM.
    result = utilization(8.18e9, 10_000, batch=256, precision_used="fp16", device_name="NVIDIA H100 80GB HBM3")
    assert result.achieved_tflops == pytest.approx(81.8)
    assert result.share_of_peak == pytest.approx(81.8 / 989.5)
    assert result.peak_tflops == 989.5 and result.precision == "fp16" and result.device == "H100 SXM"
    assert not result.host_bound and result.warning() is None


def test_rows_under_five_percent_at_throughput_batches_are_host_bound() -> None:
    slow = 0.9 * HOST_BOUND_SHARE * 19.5e12  # just under 5 % of an A100's FP32 peak, in FLOP/s
    at_throughput = utilization(1e9, slow / 1e9, THROUGHPUT_BATCH, "fp32", "NVIDIA A100-SXM4-40GB")
    assert at_throughput.host_bound
    assert "host- or launch-bound" in at_throughput.warning() and "4.5%" in at_throughput.warning()
    at_batch_1 = utilization(1e9, slow / 1e9, 1, "fp32", "NVIDIA A100-SXM4-40GB")
    assert not at_batch_1.host_bound  # batch 1 measures latency; a low share is expected there
    above = utilization(1e9, 1.1 * HOST_BOUND_SHARE * 19.5e12 / 1e9, 256, "fp32", "NVIDIA A100-SXM4-40GB")
    assert not above.host_bound


def test_no_figure_without_a_peak_flops_or_throughput() -> None:
    assert utilization(1e9, 100, 1, "fp32", "NVIDIA GeForce RTX 4090") is None
    assert utilization(0, 100, 1, "fp32", "NVIDIA L4") is None
    assert utilization(1e9, 0, 1, "fp32", "NVIDIA L4") is None
    assert utilization(1e9, 100, 1, "bf16", "Tesla T4") is None


def test_gpu_rows_get_their_share_of_peak_and_the_host_bound_warning(tiny) -> None:
    from deploybench.model_facts import model_facts
    from deploybench.peak import LocalGpu, annotate
    from deploybench.results import Row

    flops = model_facts(tiny).flops
    assert flops and flops > 1e6  # counted by torch's FlopCounterMode on the tiny timm model
    h100 = LocalGpu("NVIDIA H100 80GB HBM3", 132)
    row = Row("m", "tensorrt", "tensorrt", "cuda", "int8", 256, precision_used="int8+fp16", throughput=5000.0)
    annotate(row, flops, h100)
    assert row.utilization["precision"] == "int8" and row.utilization["flops_per_image"] == flops
    assert row.utilization["achieved_tflops"] == pytest.approx(flops * 5000 / 1e12)
    assert any("host- or launch-bound" in w for w in row.warnings)  # a tiny model cannot fill an H100
    for untouched in (
        Row("m", "onnx", "onnxruntime", "cuda", "fp32", 1, status="error"),
        Row("m", "onnx", "onnxruntime", "cpu", "fp32", 1, throughput=10.0),
    ):
        annotate(untouched, flops, None if untouched.device == "cpu" else h100)
        assert untouched.utilization is None and untouched.warnings == []
