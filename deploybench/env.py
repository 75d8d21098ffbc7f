"""The machine fingerprint every result carries: OS, CPU features, memory, GPUs, libraries."""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

# ISA features that change numbers (bf16 auto-selection, VNNI/AMX int8 kernels).
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8", "amx_tile", "fma")
LIBRARIES = (
    "torch",
    "torchvision",
    "timm",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "openvino",
    "nncf",
    "tensorrt",
    "ultralytics",
    "numpy",
)


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def _cpuinfo() -> tuple[str, set[str]]:
    model, flags = platform.processor() or platform.machine(), set[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name":
                model = value.strip()
            elif key == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return model, flags


def cpu_info() -> dict[str, Any]:
    import psutil

    model, flags = _cpuinfo()
    return {
        "model": model,
        "arch": platform.machine(),
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "features": {flag: flag in flags for flag in ISA_FLAGS},
    }


def gpu_info() -> list[dict[str, Any]]:
    """Every NVIDIA GPU as NVML sees it; empty without NVML or a driver."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver: NVMLError_LibraryNotFound / DriverNotLoaded
        return []
    gpus = []
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        cuda = pynvml.nvmlSystemGetCudaDriverVersion()
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            clock = pynvml.NVML_CLOCK_SM
            gpus.append(
                {
                    "index": index,
                    "name": pynvml.nvmlDeviceGetName(handle),
                    "compute_capability": f"{major}.{minor}",
                    "memory_mb": pynvml.nvmlDeviceGetMemoryInfo(handle).total // 2**20,
                    "driver": driver,
                    "cuda_driver": f"{cuda // 1000}.{cuda % 1000 // 10}",
                    "sm_clock_mhz": pynvml.nvmlDeviceGetClockInfo(handle, clock),
                    "sm_clock_max_mhz": pynvml.nvmlDeviceGetMaxClockInfo(handle, clock),
                }
            )
    finally:
        pynvml.nvmlShutdown()
    return gpus


def fingerprint() -> dict[str, Any]:
    """The environment as one JSON-ready dict."""
    import psutil

    return {
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "hostname": platform.node(),
        "cpu": cpu_info(),
        "memory_mb": psutil.virtual_memory().total // 2**20,
        "gpus": gpu_info(),
        "libraries": library_versions(),
    }


def has_cuda() -> bool:
    """A usable CUDA device for torch (False when torch itself is missing)."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()
