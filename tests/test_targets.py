"""Targets: shipped profiles, their defaults in `compare`, GPU targets refused up front, tegrastats."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from deploybench import registry, tegrastats
from deploybench.cli import main
from deploybench.errors import UnknownNameError, UsageError
from deploybench.sweep import SweepConfig, plan
from deploybench.targets import auto_target_name, load_target, shipped_targets

# Lines in the formats the Jetson Linux Developer Guide documents for tegrastats.
ORIN_BUSY = (
    "11-23-2026 02:00:01 RAM 4096/15368MB (lfb 2x4MB) SWAP 0/7684MB (cached 0MB) "
    "CPU [45%@1497,38%@1497,52%@1497,40%@1497,off,off,off,off] EMC_FREQ 25%@3199 GR3D_FREQ 88%@[918,918] "
    "VIC_FREQ 729 APE 174 CPU@51.5C GPU@50.2C tj@52.1C "
    "VDD_IN 12450mW/9120mW VDD_CPU_GPU_CV 5230mW/3100mW VDD_SOC 2810mW/2500mW"
)
ORIN_IDLE = (
    "RAM 1224/15368MB (lfb 8x4MB) SWAP 0/7684MB (cached 0MB) CPU [1%@729,0%@729,off,off] "
    "EMC_FREQ 0% GR3D_FREQ 0% CPU@43.5C GPU@42.5C VDD_IN 4319mW/4319mW VDD_CPU_GPU_CV 499mW/499mW "
    "VDD_SOC 1200mW/1200mW"
)
NANO = (
    "RAM 2448/3964MB (lfb 3x4MB) SWAP 0/1982MB (cached 0MB) CPU [12%@1479,3%@1479,off,off] EMC_FREQ 4%@1600 "
    "GR3D_FREQ 76%@921 PLL@20C CPU@23C PMIC@100C GPU@21.5C AO@30C thermal@22.25C "
    "POM_5V_IN 5883/4883 POM_5V_GPU 2401/1200 POM_5V_CPU 971/871"
)
AGX_ORIN = (
    "RAM 18207/62841MB (lfb 466x4MB) SWAP 86/31420MB (cached 0MB) CPU [14%@2188,5%@2112] EMC_FREQ 3%@2133 "
    "GR3D_FREQ 0%@[0,0] cpu@52.562C VDD_GPU_SOC 2412mW/2412mW VDD_CPU_CV 1607mW/1607mW "
    "VIN_SYS_5V0 4707mW/4707mW"
)


@pytest.mark.parametrize("name", shipped_targets())
def test_shipped_targets_name_known_runtimes(name: str) -> None:
    target = load_target(name)
    assert target.device in ("cpu", "cuda")
    assert set(target.runtimes) <= set(registry.runtimes.names())
    assert target.batches[0] == 1 and len(target.batches) >= 2  # batch 1 plus throughput batches
    assert "rss" in target.sample


def test_the_edge_target_is_jetson_practice() -> None:
    edge = load_target("edge")
    assert edge.runtimes[0] == "tensorrt" and set(edge.precisions) == {"fp16", "int8"}
    assert max(edge.batches) <= 8 and "tegrastats" in edge.sample


def test_a_users_target_file(tmp_path: Path) -> None:
    path = tmp_path / "jetson-nano.toml"
    path.write_text('device = "cuda"\nruntimes = ["tensorrt"]\nprecisions = ["fp16"]\nbatches = [1, 2]\n')
    target = load_target("cpu", str(path))
    assert (target.name, target.runtimes, target.batches) == ("jetson-nano", ("tensorrt",), (1, 2))
    path.write_text('device = "cuda"\nbatch = [1]\n')
    with pytest.raises(UsageError, match="unknown keys \\['batch'\\]"):
        load_target("cpu", str(path))
    with pytest.raises(UnknownNameError, match="a100"):
        load_target("a10")


def test_auto_picks_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("deploybench.env.gpu_info", lambda: [])
    assert auto_target_name() == ("edge" if Path("/etc/nv_tegra_release").exists() else "cpu")
    if Path("/etc/nv_tegra_release").exists():
        return
    monkeypatch.setattr("deploybench.env.gpu_info", lambda: [{"name": "NVIDIA H100 80GB HBM3"}])
    assert auto_target_name() == "h100"
    monkeypatch.setattr("deploybench.env.gpu_info", lambda: [{"name": "NVIDIA L4"}])
    assert auto_target_name() == "a100"


def test_compare_uses_the_target_defaults(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """`compare --models mobilenetv4 --target cpu`: runtimes, precisions, batches, device and samplers."""
    seen: dict[str, Any] = {}

    def fake_run_sweep(config: SweepConfig, **kwargs: Any) -> Any:
        seen["config"] = config
        from deploybench.results import Results

        return SimpleNamespace(results=Results(), skipped=[], nothing_ran=lambda: None)

    monkeypatch.setattr("deploybench.api.run_sweep", fake_run_sweep)
    assert main(["compare", "--models", "mobilenetv4", "--target", "cpu"]) == 0
    cpu, config = load_target("cpu"), seen["config"]
    assert config.models == ("mobilenetv4",)
    assert (config.runtimes, config.precisions, config.batches, config.device, config.threads, config.sample) == (
        cpu.runtimes,
        cpu.precisions,
        cpu.batches,
        cpu.device,
        cpu.threads,
        cpu.sample,
    )
    assert f"target cpu: cpu, runtimes {', '.join(cpu.runtimes)}" in capsys.readouterr().err

    main(["compare", "--models", "mobilenetv4", "--target", "cpu", "--runtimes", "onnxruntime", "--batch", "4"])
    assert (seen["config"].runtimes, seen["config"].batches) == (("onnxruntime",), (4,))  # options still win


@pytest.mark.parametrize("name", ["a100", "h100", "edge"])
def test_gpu_targets_are_refused_cell_by_cell_without_a_gpu(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("deploybench.env.has_cuda", lambda: False)
    target = load_target(name)
    config = SweepConfig(
        models=("test_resnet",), runtimes=target.runtimes, precisions=target.precisions, device=target.device
    )
    cells, skipped = plan(config, "test_resnet")
    assert cells == []
    assert len(skipped) == len(target.runtimes) * len(target.precisions)
    expected = {f"test_resnet {runtime} {precision}" for runtime in target.runtimes for precision in target.precisions}
    assert {str(reason).split(":")[0] for reason in skipped} == expected  # every cell, named
    for reason in skipped:
        assert "needs a CUDA GPU and there is no CUDA GPU on this machine" in reason.reason
        assert "--target cpu" in reason.reason


def test_compare_on_a100_without_a_gpu_says_what_it_cannot_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr("deploybench.env.has_cuda", lambda: False)
    code = main(["compare", "--models", "test_resnet", "--target", "a100", "--quick", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    skipped = [line for line in err.splitlines() if "skipped test_resnet" in line]
    a100 = load_target("a100")
    assert code == 2  # nothing could run: not a green night (#16.8)
    assert len(skipped) == 1, skipped  # one summary line per model and cause, not one per cell
    for runtime in a100.runtimes:
        for precision in a100.precisions:
            assert f"{runtime} {precision}" in skipped[0]
    assert skipped[0].endswith(
        "needs a CUDA GPU and there is no CUDA GPU on this machine; run it on a GPU machine or use --target cpu"
    )
    last = err.rstrip().splitlines()[-1]
    assert last.startswith("error: nothing to run: every cell was skipped (test_resnet ") and "--allow-empty" in last
    assert not (tmp_path / "results.json").exists()

    code = main(
        ["compare", "--models", "test_resnet", "--target", "a100", "--quick", "--out", str(tmp_path), "--allow-empty"]
    )
    assert code == 0 and "error:" not in capsys.readouterr().err
    assert (tmp_path / "results.json").is_file()


def test_cpu_cells_are_not_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("deploybench.env.has_cuda", lambda: False)
    cells, skipped = plan(SweepConfig(models=("test_resnet",), runtimes=("torch",), device="cpu"), "test_resnet")
    assert [c.runtime for c in cells] == ["torch"] and not any("CUDA" in str(reason) for reason in skipped)


# tegrastats -------------------------------------------------------------------------------------


def test_parse_an_orin_line() -> None:
    sample = tegrastats.parse_line(ORIN_BUSY)
    assert sample.rails_mw == {"VDD_IN": 12450, "VDD_CPU_GPU_CV": 5230, "VDD_SOC": 2810}
    assert sample.total_power_mw == 12450  # the input rail, not the sum of its parts
    assert (sample.gpu_load_pct, sample.gpu_clock_mhz) == (88, 918)
    assert (sample.emc_load_pct, sample.emc_clock_mhz, sample.ram_used_mb) == (25, 3199, 4096)


def test_parse_an_idle_orin_line_without_clocks() -> None:
    sample = tegrastats.parse_line(ORIN_IDLE)
    assert (sample.gpu_load_pct, sample.gpu_clock_mhz, sample.total_power_mw) == (0, None, 4319)


def test_parse_an_older_nano_line_without_units() -> None:
    sample = tegrastats.parse_line(NANO)
    assert sample.rails_mw == {"POM_5V_IN": 5883, "POM_5V_GPU": 2401, "POM_5V_CPU": 971}
    assert (sample.total_power_mw, sample.gpu_load_pct, sample.gpu_clock_mhz) == (5883, 76, 921)


def test_boards_without_an_input_rail_sum_their_rails() -> None:
    sample = tegrastats.parse_line(AGX_ORIN)
    assert sample.total_power_mw == 2412 + 1607 + 4707
    assert sample.gpu_clock_mhz is None  # both GPCs idle: no clock to report


def test_summarize() -> None:
    summary = tegrastats.summarize([tegrastats.parse_line(line) for line in (ORIN_BUSY, ORIN_IDLE)])
    assert summary == {
        "samples": 2,
        "power_mean_mw": 8384.5,
        "power_max_mw": 12450,
        "gpu_clock_mean_mhz": 918.0,
        "gpu_clock_min_mhz": 918,
        "gpu_load_mean_pct": 44.0,
    }
    assert tegrastats.summarize([]) == {}


def test_sampler_reads_a_running_tegrastats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in tegrastats on PATH that prints a line per interval, as the real one does."""
    fake = tmp_path / "tegrastats"
    fake.write_text(
        f"#!{sys.executable}\nimport sys, time\n"
        f"for _ in range(200):\n    print({ORIN_BUSY!r}, flush=True)\n    time.sleep(0.02)\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(tegrastats, "TEGRASTATS", tmp_path / "absent")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with tegrastats.TegrastatsSampler(interval_ms=20) as sampler:
        import time

        deadline = time.monotonic() + 10
        while len(sampler.samples) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(sampler.samples) >= 3
    assert sampler.summary()["power_max_mw"] == 12450
    with tegrastats.TegrastatsSampler(enabled=False) as off:
        pass
    assert off.samples == []


def test_sampler_is_a_no_op_off_jetson(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tegrastats, "TEGRASTATS", tmp_path / "absent")
    monkeypatch.setenv("PATH", str(tmp_path))
    with tegrastats.TegrastatsSampler() as sampler:
        pass
    assert not tegrastats.available() and sampler.summary() == {}
