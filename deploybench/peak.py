"""Achieved TFLOP/s and the share of the GPU's dense peak that a row reached.

The peaks are NVIDIA's published figures for dense math (no 2:4 structured sparsity): the
datasheets print the Tensor Core figures *with* sparsity (marked "*") and say the dense ones
are half of them. ``fp32`` means IEEE FP32 on CUDA cores (deploybench turns TF32 off for
it); ``tf32``, ``fp16``, ``bf16`` and ``int8`` are Tensor Core rates (INT8 in TOPS).

A row below :data:`HOST_BOUND_SHARE` of peak at a throughput batch spends its time outside
the GPU's math units (Python and launch overhead, host copies, small kernels), and says so.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from deploybench.results import Status

HOST_BOUND_SHARE = 0.05  # under 5 % of peak at a throughput batch: host- or launch-bound
THROUGHPUT_BATCH = 32  # the smallest batch the GPU targets time for throughput (a100: 32, h100: 64)


@dataclass(frozen=True)
class DevicePeak:
    """Dense peak TFLOP/s (TOPS for int8) of one GPU model, by precision."""

    name: str
    pattern: str  # regex matched against the lower-cased device name
    tflops: dict[str, float]
    multiprocessors: int | None = None  # where one name covers several parts (Jetson modules)

    def matches(self, device_name: str, multiprocessors: int | None) -> bool:
        if not re.search(self.pattern, device_name.lower()):
            return False
        return self.multiprocessors is None or self.multiprocessors == multiprocessors


# Order matters: the first match wins, so the PCIe parts come before the SXM ones.
PEAKS: tuple[DevicePeak, ...] = (
    # NVIDIA A100 Tensor Core GPU datasheet (nvidia-a100-datasheet-us-nvidia-1758950-r4): FP32 19.5,
    # TF32 156 (312*), BF16/FP16 312 (624*), INT8 624 (1248*) TOPS; the same for the PCIe and SXM parts.
    DevicePeak("A100", r"a100", {"fp32": 19.5, "tf32": 156.0, "fp16": 312.0, "bf16": 312.0, "int8": 624.0}),
    # NVIDIA H100 Tensor Core GPU datasheet, H100 PCIe column: FP32 51, TF32 756*, BF16/FP16 1,513*,
    # INT8 3,026* TOPS (* with sparsity; dense is half).
    DevicePeak("H100 PCIe", r"h100.*pcie", {"fp32": 51.0, "tf32": 378.0, "fp16": 756.5, "bf16": 756.5, "int8": 1513.0}),
    # NVIDIA H100 Tensor Core GPU datasheet, H100 SXM column: FP32 67, TF32 989*, BF16/FP16 1,979*,
    # INT8 3,958* TOPS (* with sparsity; dense is half). NVL parts have other figures and do not match.
    DevicePeak(
        "H100 SXM", r"h100(?!.*(nvl|pcie))", {"fp32": 67.0, "tf32": 494.5, "fp16": 989.5, "bf16": 989.5, "int8": 1979.0}
    ),
    # NVIDIA H200 Tensor Core GPU datasheet, H200 SXM column: FP32 67, TF32 989*, BF16/FP16 1,979*,
    # INT8 3,958* TOPS (the H100 SXM's GH100 compute with more memory). H200 NVL does not match.
    DevicePeak(
        "H200 SXM", r"h200(?!.*nvl)", {"fp32": 67.0, "tf32": 494.5, "fp16": 989.5, "bf16": 989.5, "int8": 1979.0}
    ),
    # NVIDIA L4 Tensor Core GPU datasheet: FP32 30.3, TF32 120*, BF16/FP16 242*, INT8 485* TOPS.
    DevicePeak("L4", r"\bl4\b", {"fp32": 30.3, "tf32": 60.0, "fp16": 121.0, "bf16": 121.0, "int8": 242.5}),
    # NVIDIA T4 Tensor Core GPU datasheet: FP32 8.1, mixed-precision FP16/FP32 65, INT8 130 TOPS
    # (Turing: no sparsity, no TF32, no BF16).
    DevicePeak("T4", r"\bt4\b", {"fp32": 8.1, "fp16": 65.0, "int8": 130.0}),
    # NVIDIA Jetson AGX Orin Series Technical Brief (v1.2): the 64 GB module's GPU has 16 SMs (2,048
    # CUDA cores, 64 Tensor Cores), 5.3 FP32 TFLOPS and 170 sparse INT8 TOPS (dense 85). Its dense
    # FP16/BF16 (42.5) and TF32 (21.25) follow at Ampere's Tensor Core ratios INT8:FP16:TF32 = 4:2:1
    # (those of the A100 datasheet above). Other Orin modules share the name "Orin": they differ in
    # SM count, and are left out rather than credited with this module's peak.
    DevicePeak(
        "Jetson AGX Orin 64GB",
        r"orin",
        {"fp32": 5.3, "tf32": 21.25, "fp16": 42.5, "bf16": 42.5, "int8": 85.0},
        multiprocessors=16,
    ),
)


def find_peak(device_name: str, multiprocessors: int | None = None) -> DevicePeak | None:
    """The table entry for a device name as NVML or torch print it, or None for a GPU not in it."""
    return next((peak for peak in PEAKS if peak.matches(device_name, multiprocessors)), None)


def peak_precision(precision_used: str, peak: DevicePeak) -> str | None:
    """The precision whose peak bounds a row: the fastest part of a mix such as ``int8+fp16``.

    Judging a mixed engine against its fastest precision keeps the share a lower bound.
    """
    parts = [p for p in precision_used.split("+") if p in peak.tflops]
    return max(parts, key=lambda p: peak.tflops[p]) if parts else None


@dataclass(frozen=True)
class Utilization:
    """What a row achieved against its device's dense peak."""

    device: str
    precision: str
    achieved_tflops: float
    peak_tflops: float
    share_of_peak: float  # 0..1
    host_bound: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def warning(self) -> str | None:
        if not self.host_bound:
            return None
        return (
            f"host- or launch-bound: {self.share_of_peak:.1%} of the {self.device}'s dense {self.precision} "
            f"peak ({self.achieved_tflops:.2f} of {self.peak_tflops:g} TFLOP/s) at a throughput batch"
        )


def utilization(
    flops_per_image: float,
    images_per_second: float,
    batch: int,
    precision_used: str,
    device_name: str,
    multiprocessors: int | None = None,
) -> Utilization | None:
    """Achieved TFLOP/s and share of the dense peak; None when the device or precision has no peak here."""
    peak = find_peak(device_name, multiprocessors)
    if peak is None or flops_per_image <= 0 or images_per_second <= 0:
        return None
    precision = peak_precision(precision_used, peak)
    if precision is None:
        return None
    achieved = flops_per_image * images_per_second / 1e12
    share = achieved / peak.tflops[precision]
    return Utilization(
        device=peak.name,
        precision=precision,
        achieved_tflops=achieved,
        peak_tflops=peak.tflops[precision],
        share_of_peak=share,
        host_bound=batch >= THROUGHPUT_BATCH and share < HOST_BOUND_SHARE,
    )


@dataclass(frozen=True)
class LocalGpu:
    """The CUDA device rows are measured on, as the peak table identifies it."""

    name: str
    multiprocessors: int


def local_gpu() -> LocalGpu | None:
    """CUDA device 0 as torch sees it (the device workers compute on), or None without one."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return LocalGpu(name=props.name, multiprocessors=props.multi_processor_count)


def annotate(row: Any, flops_per_image: int | None, gpu: LocalGpu | None) -> None:
    """Give a measured GPU row its achieved TFLOP/s and % of peak, and the host-bound warning."""
    if row.status != Status.OK or not flops_per_image or gpu is None or not row.throughput:
        return
    found = utilization(
        flops_per_image, row.throughput, row.batch, row.precision_used or row.precision, gpu.name, gpu.multiprocessors
    )
    if found is None:
        return
    row.utilization = {"flops_per_image": flops_per_image, **found.to_dict()}
    if found.warning():
        row.warnings.append(found.warning())
