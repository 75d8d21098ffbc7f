"""TensorRT: registration, refusals and install hints everywhere; engines and parity where a GPU and TensorRT exist."""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

import numpy as np
import pytest

from deploybench import registry
from deploybench.artifact import Artifact, BatchRange
from deploybench.cache import ArtifactCache, default_cache_dir
from deploybench.cli import main
from deploybench.errors import RuntimeLoadError, UnsupportedError
from deploybench.exporters.base import ExportOptions
from deploybench.exporters.tensorrt import (
    PRECISION_FLAGS,
    TIMING_CACHE_NAME,
    TensorRTExporter,
    set_precision_flags,
    timing_cache_path,
)
from deploybench.inputs import example_batch
from deploybench.models import resolve
from deploybench.parity import output_metrics, tolerance_for
from deploybench.runtimes.base import RuntimeOptions
from deploybench.runtimes.tensorrt import TensorRTRuntime, foreign_engine_problem

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
needs_no_tensorrt = pytest.mark.skipif(
    HAS_TENSORRT, reason="tensorrt is installed; this checks the hint shown without it"
)
INSTALL_HINT = "pip install 'deploybench[tensorrt]'"


# -- everywhere: registration, hints, capability tables ------------------------------------


def test_registered_under_name_and_alias() -> None:
    assert registry.exporters.get("trt") is TensorRTExporter
    assert registry.runtimes.get("trt") is TensorRTRuntime
    assert registry.exporters.canonical("trt") == registry.runtimes.canonical("trt") == "tensorrt"
    assert TensorRTExporter.check_runtime == "tensorrt" and TensorRTRuntime.formats == ("tensorrt",)
    assert TensorRTExporter.precisions == TensorRTRuntime.precisions == tuple(PRECISION_FLAGS)


@needs_no_tensorrt
@pytest.mark.parametrize("kind", ["exporters", "runtimes"])
def test_list_shows_tensorrt_unavailable_with_install_hint(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", kind]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("tensorrt "))
    assert "no: 'tensorrt' is not installed" in row and INSTALL_HINT in row


@needs_no_tensorrt
def test_cli_export_without_tensorrt_prints_one_line_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "test_resnet", "--to", "trt"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("note:")]
    assert len(err) == 1, err
    assert err[0].startswith("error: ") and "tensorrt" in err[0] and INSTALL_HINT in err[0]


def test_runtime_capability_table_refuses_cpu_and_other_formats() -> None:
    assert TensorRTRuntime.supports("tensorrt", "cuda", "int8") is None
    cpu = TensorRTRuntime.supports("tensorrt", "cpu", "fp32")
    assert cpu is not None and "cuda" in cpu and "cpu" in cpu
    other = TensorRTRuntime.supports("onnx", "cuda", "fp32")
    assert other is not None and "tensorrt" in other
    assert "int8" in (TensorRTRuntime.supports("tensorrt", "cuda", "int4") or "")


@pytest.fixture
def requirements_met(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend tensorrt is installed, so validation reaches the checks behind the package check."""
    monkeypatch.setattr(registry.exporters, "require", lambda name: registry.exporters.get(name))


def test_exporter_refuses_cpu_listing_supported_devices(tiny, requirements_met) -> None:
    with pytest.raises(UnsupportedError, match=r"device 'cpu'; supported: cuda"):
        TensorRTExporter().validate(tiny, ExportOptions(device="cpu"))


def test_exporter_refuses_unknown_precision_listing_supported(tiny, requirements_met) -> None:
    with pytest.raises(UnsupportedError, match=r"fp32, tf32, fp16, bf16, int8"):
        TensorRTExporter().validate(tiny, ExportOptions(device="cuda", precision="int4"))


def test_exporter_without_gpu_says_a_cuda_gpu_is_needed(tiny, requirements_met) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present; this checks the message shown without one")
    with pytest.raises(UnsupportedError, match="no CUDA GPU"):
        TensorRTExporter().validate(tiny, ExportOptions(device="cuda"))


def test_timing_cache_defaults_to_the_cache_folder_and_honours_the_option(tmp_path: Path) -> None:
    assert timing_cache_path(ExportOptions()) == default_cache_dir() / TIMING_CACHE_NAME
    mine = tmp_path / "mine.cache"
    assert timing_cache_path(ExportOptions(timing_cache=str(mine))) == mine


def test_workspace_is_part_of_the_cache_key(tiny, tmp_path: Path) -> None:
    cache, exporter = ArtifactCache(tmp_path), TensorRTExporter()
    small, large = ExportOptions(device="cuda", workspace_gb=1), ExportOptions(device="cuda", workspace_gb=8)
    assert cache.key(exporter, tiny, small) != cache.key(exporter, tiny, large)
    assert cache.key(exporter, tiny, small) == cache.key(exporter, tiny, ExportOptions(device="cuda", workspace_gb=1))


class _Config:
    """A builder config that starts as TensorRT's does: TF32 allowed."""

    def __init__(self) -> None:
        self.flags = {"TF32"}

    def set_flag(self, flag: str) -> None:
        self.flags.add(flag)

    def clear_flag(self, flag: str) -> None:
        self.flags.discard(flag)


@pytest.mark.parametrize("precision", PRECISION_FLAGS)
def test_only_the_tf32_precision_leaves_tf32_allowed(precision: str) -> None:
    # The layers an fp16 or int8 engine keeps in FP32 (--keep-fp32 repairs accuracy so) are IEEE FP32.
    names = ("TF32", "FP16", "BF16", "INT8")
    trt = types.SimpleNamespace(
        BuilderFlag=types.SimpleNamespace(**{name: name for name in names}),
        IInt8EntropyCalibrator2=object,
        __version__="10.13",
    )
    config = _Config()
    allowed = set_precision_flags(trt, config, precision)
    assert allowed == (precision == "tf32") == ("TF32" in config.flags)
    assert config.flags - {"TF32"} == set(PRECISION_FLAGS[precision]) - {"TF32"}


@pytest.mark.parametrize("manifest", [{"tf32_allowed": True, "builder_flags": ["TF32"]}, {"builder_flags": ["TF32"]}])
def test_a_cached_tf32_engine_is_refused_where_the_override_turns_tf32_off(
    manifest: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TF32 is fixed when an engine is built: one loaded under NVIDIA_TF32_OVERRIDE=0 would run
    IEEE FP32 under a tf32 label. Refused before TensorRT is imported, so this runs anywhere."""
    monkeypatch.setenv("NVIDIA_TF32_OVERRIDE", "0")
    engine = Artifact("tensorrt", tmp_path, "model.plan", precision="tf32", device="cuda", manifest=manifest)
    with pytest.raises(UnsupportedError, match="model.plan asks for TF32, and NVIDIA_TF32_OVERRIDE=0"):
        TensorRTRuntime(RuntimeOptions(device="cuda", precision="tf32"))._load(engine)
    fp32 = Artifact(
        "tensorrt", tmp_path, "model.plan", device="cuda", manifest={"builder_flags": [], "tf32_allowed": False}
    )
    with pytest.raises(Exception) as raised:  # an fp32 engine goes on: to TensorRT, or to its absence here
        TensorRTRuntime(RuntimeOptions(device="cuda"))._load(fp32)
    assert "NVIDIA_TF32_OVERRIDE" not in str(raised.value)


def test_engines_from_another_tensorrt_or_gpu_are_refused() -> None:
    here = {"tensorrt": "10.3.0", "compute_capability": "8.9"}
    assert foreign_engine_problem({"tensorrt": "10.3.0", "compute_capability": "8.9"}, here) is None
    other_gpu = foreign_engine_problem({"tensorrt": "10.3.0", "compute_capability": "9.0"}, here)
    assert other_gpu is not None and "compute capability 9.0" in other_gpu and "8.9" in other_gpu
    other_trt = foreign_engine_problem({"tensorrt": "10.1.0", "compute_capability": "8.9"}, here)
    assert other_trt is not None and "TensorRT 10.1.0" in other_trt and "rebuild" in other_trt


# -- with TensorRT and a CUDA GPU: real engines ----------------------------------------------


@pytest.fixture(scope="module")
def gpu_cache(tmp_path_factory: pytest.TempPathFactory) -> ArtifactCache:
    pytest.importorskip("tensorrt", reason="tensorrt is not installed (pip install 'deploybench[tensorrt]')")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("TensorRT needs a CUDA GPU and torch sees none")
    return ArtifactCache(tmp_path_factory.mktemp("trt-cache"))


def _export(gpu_cache: ArtifactCache, tiny, precision: str, **options) -> Artifact:
    settings = {"device": "cuda", "batch": BatchRange(1, 2, 4), "workspace_gb": 1.0, **options}
    artifact, _ = gpu_cache.get_or_export(TensorRTExporter(), tiny, ExportOptions(precision=precision, **settings))
    return artifact


def _reference(tiny, batch: np.ndarray) -> list[np.ndarray]:
    with registry.runtimes.get("torch")().load(Artifact.from_module(tiny)) as rt:
        return rt.run(batch)


@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_matches_pytorch(gpu_cache: ArtifactCache, tiny, precision: str) -> None:
    artifact = _export(gpu_cache, tiny, precision)
    manifest = artifact.manifest
    assert manifest["checked_with"] == "tensorrt" and artifact.file.suffix == ".engine"
    assert manifest["compute_capability"] and manifest["tensorrt"]
    assert manifest["profile"]["min"] == 1 and manifest["profile"]["max"] == 4
    assert Path(manifest["timing_cache"]).is_file()
    assert set(manifest["files"]) == {"model.engine"}  # the intermediate ONNX graph is not kept
    batch = example_batch(tiny.input, 3, seed=5)  # 3: inside the profile, not its opt
    with TensorRTRuntime(RuntimeOptions(device="cuda", precision=precision)).load(Artifact.load(artifact.path)) as rt:
        candidate = rt.run(batch)
        assert rt.info["precision_used"] == precision and rt.info["profile_batch"] == {"min": 1, "opt": 2, "max": 4}
        assert rt.info["engine_device_mb"] > 0 and rt.info["batch_shape"] == "dynamic"
        with pytest.raises(UnsupportedError, match="batch 1 to 4"):
            rt.prepare(example_batch(tiny.input, 5))
    tolerance = tolerance_for(precision)
    metrics = output_metrics("output", _reference(tiny, batch)[0], candidate[0])
    assert metrics.shape == [3, 1000] and metrics.nonfinite == 0
    assert metrics.error <= tolerance.max_error, metrics


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_second_build_reuses_the_timing_cache(gpu_cache: ArtifactCache, tiny, tmp_path: Path) -> None:
    timing = tmp_path / "timing.cache"
    first = _export(gpu_cache, tiny, "fp32", timing_cache=str(timing), workspace_gb=0.5)
    assert timing.is_file() and first.manifest["timing_cache_reused"] is False
    second = _export(gpu_cache, tiny, "fp32", timing_cache=str(timing), workspace_gb=0.75)  # another cache entry
    assert second.path != first.path and second.manifest["timing_cache_reused"] is True


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_int8_calibrates_or_says_why_not(gpu_cache: ArtifactCache, tiny) -> None:
    import tensorrt as trt

    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        with pytest.raises(UnsupportedError, match="implicit INT8 calibration"):
            _export(gpu_cache, tiny, "int8", calib_size=8)
        return
    artifact = _export(gpu_cache, tiny, "int8", calib_size=9)  # 9 samples, opt batch 2: 8 are used
    assert (
        artifact.manifest["calibration_samples"] == 8 and "seed" in artifact.manifest["calibration"]
    )  # its origin: photo crops or noise
    with TensorRTRuntime(RuntimeOptions(device="cuda", precision="int8")).load(artifact) as rt:
        out = rt.run(example_batch(tiny.input, 2))
    assert out[0].shape == (2, 1000) and np.isfinite(out[0]).all()


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_engine_from_another_gpu_is_refused_at_load(gpu_cache: ArtifactCache, tiny) -> None:
    artifact = Artifact.load(_export(gpu_cache, tiny, "fp32").path)
    artifact.manifest["compute_capability"] = "1.0"
    with pytest.raises(RuntimeLoadError, match="rebuild"):
        TensorRTRuntime(RuntimeOptions(device="cuda")).load(artifact)


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_a_comparison_builds_one_engine_per_batch_with_opt_at_that_batch(
    gpu_cache: ArtifactCache, tmp_path: Path
) -> None:
    from deploybench.harness import MeasurePolicy
    from deploybench.results import Results
    from deploybench.sweep import Sweep, SweepConfig

    config = SweepConfig(
        models=("test_resnet",),
        runtimes=("tensorrt",),
        batches=(1, 4),
        device="cuda",
        policy=MeasurePolicy.quick(),
        isolate=False,
        parity_images=2,
    )
    rows = Sweep(config, gpu_cache, Results(), work_dir=tmp_path).run().rows
    assert [r.status for r in rows] == ["ok", "ok"], [r.message for r in rows]
    for row in rows:
        b = row.batch
        assert row.runtime_info["profile_batch"] == {"min": b, "opt": b, "max": b} and row.batch_shape == "static"
    assert rows[0].artifact.path != rows[1].artifact.path  # cached per batch
    # The same engine as `deploybench export --to trt --batch 4` writes: one cache entry for both.
    again, hit = gpu_cache.get_or_export(
        TensorRTExporter(), resolve("test_resnet"), ExportOptions(device="cuda", batch=BatchRange(4, 4, 4))
    )
    assert hit and str(again.path) == rows[1].artifact.path
