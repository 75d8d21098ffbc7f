"""scripts/gpu_check.py (make gpu-check): on this CPU machine end to end, and its parts with stand-ins."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.py"
spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
gpu_check = importlib.util.module_from_spec(spec)
sys.modules["gpu_check"] = gpu_check  # its dataclasses look their module up
spec.loader.exec_module(gpu_check)


def no_gpu_here() -> bool:
    import torch

    from deploybench.env import gpu_info

    return not torch.cuda.is_available() and not gpu_info()


@pytest.mark.skipif(not no_gpu_here(), reason="an NVIDIA GPU is present; this checks the CPU machine's path")
def test_without_a_gpu_it_says_so_skips_the_gpu_tests_and_exits_0(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--tests", "tests/test_tensorrt.py"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gpu-check: no NVIDIA GPU" in done.stdout
    report = (tmp_path / "gpu-check.md").read_text()
    assert report == done.stdout[done.stdout.index("# deploybench GPU check") :].rstrip("\n") + "\n"
    steps = {
        line.split("|")[1].strip(): line.split("|")[2].strip()
        for line in report.splitlines()
        if line.startswith("| ") and not line.startswith("| step")
    }
    assert steps == {"wheels": "skipped", "device": "skipped", "pytest": "skipped", "compare": "skipped"}
    assert "skipped" in (tmp_path / "pytest.log").read_text()  # the GPU tests were collected and skipped
    assert "no NVIDIA GPU: nothing to measure" in report


def make_wheel(folder: Path, name: str = "gpucheckdemo") -> Path:
    """A minimal pure-Python wheel (what pip needs to install it offline)."""
    wheel = folder / f"{name}-0.1-py3-none-any.whl"
    info = f"{name}-0.1.dist-info"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{name}.py", "VALUE = 42\n")
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        archive.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        archive.writestr(f"{info}/RECORD", "")
    return wheel


def test_wheels_brought_along_are_installed_offline_and_split_ones_joined(tmp_path: Path) -> None:
    folder = tmp_path / "wheels"
    folder.mkdir()
    whole = make_wheel(folder, "gpucheckdemo")
    split = make_wheel(tmp_path, "gpucheckparts").read_bytes()
    # `split -b` pieces, as GPU.md brings a wheel larger than one transfer.
    (folder / "gpucheckparts-0.1-py3-none-any.whl.part-aa").write_bytes(split[:300])
    (folder / "gpucheckparts-0.1-py3-none-any.whl.part-ab").write_bytes(split[300:])
    env = dict(os.environ, PYTHONPATH="")
    step = gpu_check.install_wheels(folder, tmp_path / "out" / "site", env)
    assert step.status == "ok", step.detail
    assert "gpucheckdemo" in step.detail and "gpucheckparts" in step.detail
    site = tmp_path / "out" / "site"
    assert (site / "gpucheckdemo.py").is_file() and (site / "gpucheckparts.py").is_file()
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(site)  # later steps import from it
    seen = subprocess.run(
        [sys.executable, "-c", "import gpucheckparts; print(gpucheckparts.VALUE)"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert seen.stdout.strip() == "42"
    assert whole.is_file()


def test_wheel_step_skips_or_fails_with_a_reason(tmp_path: Path) -> None:
    env = dict(os.environ)
    assert gpu_check.install_wheels(None, tmp_path / "site", env).status == "skipped"
    assert gpu_check.install_wheels(tmp_path, tmp_path / "site", env).detail.startswith("no .whl files")
    missing = gpu_check.install_wheels(tmp_path / "nope", tmp_path / "site", env)
    assert missing.status == "failed" and "is not a folder" in missing.detail


def test_models_without_their_library_are_left_out_with_the_reason() -> None:
    keep, reasons = gpu_check.runnable_models("resnet50,vit_b16,yolov8n", {"modules": {"ultralytics": False}})
    assert keep == ["resnet50", "vit_b16"] and reasons == ["yolov8n needs ultralytics (bring its wheel with --wheels)"]
    keep, reasons = gpu_check.runnable_models("resnet50,yolov8n", {"modules": {"ultralytics": True}})
    assert keep == ["resnet50", "yolov8n"] and reasons == []


def test_summary_lists_each_row_with_peak_energy_and_cross_checks(tmp_path: Path) -> None:
    (tmp_path / "compare").mkdir()
    row = {
        "model": "resnet50",
        "runtime": "tensorrt",
        "precision": "fp16",
        "precision_used": "fp16",
        "batch": 256,
        "status": "ok",
        "ms_per_image": 0.05,
        "throughput": 20000.0,
        "parity": {"verdict": "pass"},
        "utilization": {"achieved_tflops": 163.6, "share_of_peak": 0.1653},
        "warnings": ["GPU throttled during the timed window (sw_power_cap)"],
        "runtime_info": {
            "nvml": {"energy_per_image_mj": 30.5},
            "cross_check": {"ratio_of_medians": 1.012},
            "node_placement": {"cpu_nodes": ["Shape:s"]},
        },
    }
    plain = {"model": "vit_b16", "runtime": "onnxruntime", "precision": "fp32", "batch": 1, "status": "error"}
    (tmp_path / "compare" / "results.json").write_text(json.dumps({"rows": [row, plain]}))
    text = gpu_check.summary([gpu_check.Step("compare", "ok", "done")], tmp_path)
    lines = text.splitlines()
    assert (
        "| resnet50 | tensorrt | fp16 | 256 | ok | 0.0500 | 20,000.0 | 163.60 | 16.5% | 30.50 | yes | pass | "
        "1.012 | 1 |" in lines
    )
    assert "| vit_b16 | onnxruntime | fp32 | 1 | error | - | - | - | - | - | - | - | - | - |" in lines
