"""The CLI end to end through ``main(argv)``: what users type first."""

from __future__ import annotations

import json

import helpers
import pytest

from deploybench.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_lists_commands(capsys) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("export", "bench", "compare", "info", "models", "list", "env", "report", "cache"):
        assert command in out


def test_info_json_reports_exact_parameters_and_counted_flops(capsys) -> None:
    code, out, _ = run(capsys, "info", "resnet50", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["parameters"] == 25_557_032
    assert 8.0e9 < data["flops"] < 8.4e9  # 2 x 4.1 GMACs at 224x224
    assert data["outputs"] == [{"name": "output", "shape": ["batch", 1000]}]


def test_info_yolov8n_is_a_640_detector(capsys) -> None:
    code, out, _ = run(capsys, "info", "yolov8n")
    assert code == 0
    assert "detection" in out and "640, 640" in out and "3,157,200" in out


def test_info_resolves_alias(capsys) -> None:
    code, out, _ = run(capsys, "info", "vit_b16", "--json")
    data = json.loads(out)
    assert code == 0 and data["name"] == "vit_base_patch16_224" and data["parameters"] == 86_567_656


def test_models_lists_aliases_and_library_names(capsys) -> None:
    code, out, _ = run(capsys, "models")
    assert code == 0 and "mobilenetv4_conv_small" in out and "yolov8n" in out
    code, out, _ = run(capsys, "models", "test_v*")
    assert code == 0 and "test_vit" in out and "resnet50" not in out


def test_list_runtimes_says_why_unavailable(capsys) -> None:
    code, out, _ = run(capsys, "list", "runtimes")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip()}
    assert lines["onnxruntime"].rstrip().endswith("yes")
    assert "deploybench[tensorrt]" in lines["tensorrt"]


def test_env_json_has_the_fingerprint(capsys) -> None:
    code, out, _ = run(capsys, "env", "--json")
    data = json.loads(out)
    assert code == 0
    assert {"os", "python", "cpu", "memory_mb", "gpus", "libraries"} <= set(data)
    assert "avx512_bf16" in data["cpu"]["features"] and data["libraries"]["torch"]


def test_export_then_cache_hit(capsys, tmp_path) -> None:
    cache = str(tmp_path / "c")
    code, out, _ = run(capsys, "export", "test_resnet", "--to", "ts,onnx", "--cache", cache)
    assert code == 0 and out.count("exported in") == 2
    code, out, _ = run(
        capsys, "export", "test_resnet", "--to", "ts,onnx", "--cache", cache, "--out", str(tmp_path / "o")
    )
    assert code == 0 and out.count("cache hit") == 2
    assert (tmp_path / "o").is_dir() and len(list((tmp_path / "o").glob("*/manifest.json"))) == 2


def test_export_refuses_unsupported_combination_before_work(capsys, tmp_path) -> None:
    code, out, err = run(
        capsys, "export", "test_resnet", "--to", "onnx,ov", "--precision", "int8", "--cache", str(tmp_path)
    )
    assert code == 2
    assert err.count("\n") == 1 and "supported: fp32, fp16" in err and "Traceback" not in err
    assert not any(tmp_path.glob("*/manifest.json"))


def test_bench_prints_statistics_memory_and_timed_region(capsys) -> None:
    code, out, _ = run(capsys, "bench", "test_resnet", "--runtime", "onnxruntime", "--batch", "1,2", "--quick")
    assert code == 0
    header = out.splitlines()[0]
    for column in ("min", "mean", "p50", "p90", "p95", "p99", "max", "std", "cv", "ms/img", "img/s", "host MB"):
        assert column in header
    assert "timed region: CPU: session.run" in out
    assert "threads=" in out


def test_compare_exit_code_follows_parity(capsys, tmp_path) -> None:
    args = [
        "compare",
        "--models",
        "test_resnet",
        "--runtimes",
        "torch,onnxruntime",
        "--precisions",
        "fp32",
        "--batch",
        "1",
        "--quick",
        "--no-isolate",
        "--tolerance",
        "max_error=0",
    ]
    code, out, err = run(capsys, *args, "--out", str(tmp_path / "a"))
    assert code == 1 and "failed parity" in err  # ORT differs from eager in the last bits; 0 tolerance fails it
    assert (tmp_path / "a" / "results.json").is_file() and (tmp_path / "a" / "results.md").is_file()
    code, _, _ = run(capsys, *args, "--allow-mismatch")
    assert code == 0


def test_report_rerenders_a_results_file(capsys, tmp_path) -> None:
    run(
        capsys,
        "compare",
        "--models",
        "test_resnet",
        "--runtimes",
        "onnxruntime",
        "--precisions",
        "fp32",
        "--batch",
        "1",
        "--quick",
        "--no-isolate",
        "--out",
        str(tmp_path),
    )
    code, out, _ = run(capsys, "report", str(tmp_path / "results.json"), "--csv", str(tmp_path / "r.csv"))
    assert code == 0 and "onnxruntime" in out
    assert (tmp_path / "r.csv").read_text().count("\n") == 2


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["info", "resnet5O"], "did you mean"),
        (["export", "test_resnet", "--to", "tflite"], "unknown format 'tflite'"),
        (["compare", "--models", "test_resnet", "--batch", "1,,x"], "malformed batch list"),
        (["compare", "--models", "test_resnet", "--target", "tpu"], "unknown target 'tpu'"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(capsys, argv, fragment) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and fragment in err


def test_verbose_shows_the_traceback(capsys) -> None:
    code, _, err = run(capsys, "-v", "info", "resnet5O")
    assert code == 2 and "Traceback" in err


def test_bench_defaults_to_the_runtimes_own_device(capsys) -> None:
    """TensorRT runs on CUDA only: bench must not ask it for the CPU, but say what is missing here."""
    from deploybench.env import has_cuda

    code, _, err = run(capsys, "bench", "test_resnet", "--runtime", "tensorrt", "--quick")
    if has_cuda():
        pytest.skip("a GPU is present; the tensorrt tests cover this path")
    assert code == 2
    assert "needs a CUDA GPU" in err and "not cpu" not in err


NOISY_MODULE = """
import logging, os, sys
import torch
from deploybench.models import InputSpec

# A handler bound to the stdout object at import, as Ultralytics' LOGGER is.
log = logging.getLogger("noisy-library")
log.addHandler(logging.StreamHandler(sys.stdout))
log.setLevel(logging.INFO)
log.propagate = False


def net():
    print("NOISE-print")  # Python level, as NNCF's progress bars
    os.write(1, b"NOISE-fd\\n")  # file-descriptor level, as C++ runtimes and compilers
    log.info("NOISE-logger")
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())


net.input_spec = InputSpec(shape=(3, 16, 16))
"""


def test_library_output_never_lands_in_the_tables_stream(tmp_path) -> None:
    """`deploybench compare > table.txt` holds the table alone; what libraries print goes to stderr."""
    import os
    import subprocess
    import sys

    (tmp_path / "noisy_models.py").write_text(NOISY_MODULE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "deploybench",
            "compare",
            "--models",
            "noisy_models:net",
            "--runtimes",
            "torch",
            "--precisions",
            "fp32",
            "--batch",
            "1",
            "--quick",
            "--no-isolate",
            "--cache",
            str(tmp_path / "cache"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "NOISE" not in done.stdout, done.stdout
    assert done.stdout.lstrip().split()[:2] == ["model", "format"]  # the table starts the stream
    for noise in ("NOISE-print", "NOISE-fd", "NOISE-logger"):
        assert noise in done.stderr
    info = subprocess.run(
        [sys.executable, "-m", "deploybench", "info", "noisy_models:net"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert info.returncode == 0 and "NOISE" not in info.stdout and "NOISE-fd" in info.stderr
    assert info.stdout.split()[:2] == ["name:", "noisy_models:net"]


def test_skips_are_summarised_once_per_model_and_cause() -> None:
    from deploybench.sweep import SweepConfig, plan, summarise_skips

    config = SweepConfig(
        models=("m",), runtimes=("torch", "torchscript", "onnxruntime", "openvino"), precisions=("fp32", "int8")
    )
    _, skipped = plan(config, "m")
    assert len(skipped) == 3  # one per cell ...
    assert summarise_skips(skipped) == [
        "m int8: not supported by torch (fp32, fp16, bf16), "  # ... one line
        "torchscript (fp32, fp16, bf16), onnxruntime (fp32, fp16)"
    ]


def test_inconclusive_parity_exits_1_only_with_strict_parity(capsys) -> None:
    from deploybench.cli.compare import parity_exit_code
    from deploybench.results import Results, Row

    def row(verdict: str) -> Row:
        return Row("m", "onnx", "onnxruntime", "cpu", "int8", 1, parity=helpers.parity(verdict))

    unsure = Results(rows=[row("pass"), row("inconclusive")])
    assert parity_exit_code(unsure, allow_mismatch=False, strict_parity=False) == 0
    assert parity_exit_code(unsure, allow_mismatch=False, strict_parity=True) == 1
    assert "1 rows had inconclusive parity" in capsys.readouterr().err
    assert parity_exit_code(unsure, allow_mismatch=True, strict_parity=True) == 0
    assert parity_exit_code(Results(rows=[row("fail")]), allow_mismatch=False, strict_parity=False) == 1


@pytest.mark.parametrize("flags, shape", [((), "static"), (("--dynamic-batch",), "dynamic")])
def test_bench_times_the_static_shape_unless_dynamic_batch_is_asked(capsys, tmp_path, flags, shape) -> None:
    from deploybench.results import Results

    out_file = tmp_path / "r.json"
    code, out, _ = run(
        capsys,
        "bench",
        "test_resnet",
        "--runtime",
        "openvino",
        "--batch",
        "2",
        "--quick",
        "--json",
        str(out_file),
        *flags,
    )
    assert code == 0
    row = Results.load(out_file).rows[0]
    assert row.batch_shape == shape and row.runtime_info["batch_shape"] == shape
    assert f"{shape} batch shape" in out and "median 95 % interval" in out
    assert row.memory.rss_source.startswith("kernel high-water mark") and "host memory from the kernel" in out


def test_the_time_cap_is_a_flag_and_never_cuts_the_floor_short() -> None:
    from deploybench.api import sweep_config

    def policy(min_seconds: float | None, max_seconds: float | None):
        return sweep_config(["test_resnet"], min_seconds=min_seconds, max_seconds=max_seconds).policy

    assert policy(None, None).max_seconds == 3.0
    assert policy(None, 2.5).max_seconds == 2.5
    assert policy(6.0, 3.0).max_seconds == 6.0  # the floor wins over a lower cap
