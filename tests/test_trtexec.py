"""The trtexec cross-check: its summary parser on a sample in trtexec's documented format, and a stand-in trtexec."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from deploybench.trtexec import command, cross_check, parse_summary

# Written by hand in the format of TensorRT's documentation (trtexec's "Performance summary"):
# no trtexec runs in this workplace. Its figures are made up; only the layout matters here.
SAMPLE = (Path(__file__).parent / "data" / "trtexec_summary.txt").read_text()


def test_parser_reads_every_section_and_the_throughput() -> None:
    summary = parse_summary(SAMPLE)
    assert summary.throughput_qps == pytest.approx(46.9021)
    assert set(summary.sections) == {"Latency", "Enqueue Time", "H2D Latency", "GPU Compute Time", "D2H Latency"}
    assert summary.median("Latency") == pytest.approx(21.2803)  # not the H2D Latency's median of 0
    assert summary.median("Enqueue Time") == pytest.approx(0.415771)
    assert summary.sections["GPU Compute Time"]["percentile(99%)"] == pytest.approx(21.8813)
    assert summary.sections["H2D Latency"]["median"] == 0.0


def test_output_without_a_summary_is_none() -> None:
    assert parse_summary("[E] Error[1]: engine deserialization failed\n&&&& FAILED TensorRT.trtexec") is None


def test_command_runs_the_engine_at_the_rows_shape_without_transfers() -> None:
    cmd = command("trtexec", Path("/c/model.engine"), "input", (256, 3, 224, 224))
    assert cmd[:3] == ["trtexec", "--loadEngine=/c/model.engine", "--shapes=input:256x3x224x224"]
    assert "--noDataTransfers" in cmd


@pytest.fixture
def fake_trtexec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A trtexec on PATH that logs its arguments and prints the sample (or fails when told)."""
    script = tmp_path / "bin" / "trtexec"
    script.parent.mkdir()
    script.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        "open(os.environ['FAKE_TRTEXEC_LOG'], 'w').write(' '.join(sys.argv[1:]))\n"
        "if os.environ.get('FAKE_TRTEXEC_FAIL'):\n"
        "    print('[E] Error[1]: engine was built by another TensorRT'); sys.exit(1)\n"
        f"sys.stdout.write(open({str(Path(__file__).parent / 'data' / 'trtexec_summary.txt')!r}).read())\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_TRTEXEC_LOG", str(tmp_path / "args.txt"))
    return tmp_path / "args.txt"


def test_cross_check_puts_the_ratio_of_medians_in_the_row(fake_trtexec: Path) -> None:
    found = cross_check(
        Path("/c/model.engine"), "input", (256, 3, 224, 224), median_ms=21.7066, device_median_ms=21.2803
    )
    assert "--shapes=input:256x3x224x224" in fake_trtexec.read_text()
    assert found.ratio_of_medians == pytest.approx(21.7066 / 21.2803, abs=1e-4)  # deploybench 2 % above trtexec
    assert found.ratio_of_gpu_medians == pytest.approx(1.0)
    info = found.to_dict()
    assert info["tool"] == "trtexec" and info["trtexec_latency_median_ms"] == pytest.approx(21.2803)
    assert "error" not in info


def test_a_failing_trtexec_is_recorded_not_raised(fake_trtexec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_TRTEXEC_FAIL", "1")
    found = cross_check(Path("m.engine"), "input", (1, 3, 8, 8), 1.0, None)
    assert found.error == "exit 1: [E] Error[1]: engine was built by another TensorRT"
    assert found.ratio_of_medians is None


def test_without_trtexec_there_is_no_cross_check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert cross_check(Path("m.engine"), "input", (1, 3, 8, 8), 1.0, None) is None


def test_tensorrt_runtime_cross_checks_its_own_engine(fake_trtexec: Path) -> None:
    """The runtime's hook (no tensorrt needed: it runs after unloading, from the artifact and input name)."""
    from deploybench.runtimes.base import RuntimeOptions
    from deploybench.runtimes.tensorrt import TensorRTRuntime

    runtime = TensorRTRuntime(RuntimeOptions(device="cuda"))
    runtime.artifact, runtime._input = SimpleNamespace(file=Path("/c/resnet50/model.engine")), "images"
    info = runtime.cross_check((64, 3, 224, 224), 20.0, None)
    assert "--loadEngine=/c/resnet50/model.engine --shapes=images:64x3x224x224" in fake_trtexec.read_text()
    assert info["ratio_of_medians"] == pytest.approx(20.0 / 21.2803, abs=1e-4) and "ratio_of_gpu_medians" not in info
