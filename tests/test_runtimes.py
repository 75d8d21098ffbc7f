"""Every CPU runtime: loads its artifact, matches PyTorch, records what it really used."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import cpu_runtimes

from deploybench import registry
from deploybench.artifact import Artifact
from deploybench.errors import RuntimeLoadError, UnsupportedError
from deploybench.inputs import example_batch
from deploybench.runtimes.base import RuntimeOptions


def _artifact_for(runtime: str, artifacts, tiny) -> Artifact:
    fmt = registry.runtimes.get(runtime).formats[0]
    return Artifact.from_module(tiny) if fmt == "pytorch" else artifacts.get(fmt)


@pytest.mark.parametrize("runtime", cpu_runtimes())
def test_runtime_matches_reference_and_reports_its_setting(runtime: str, artifacts, tiny) -> None:
    batch = example_batch(tiny.input, 2, seed=11)
    with registry.runtimes.get("torch")().load(Artifact.from_module(tiny)) as rt:
        expected = rt.run(batch)
    options = RuntimeOptions(threads=1)
    artifact = _artifact_for(runtime, artifacts, tiny)
    with registry.runtimes.get(runtime)(options).load(artifact) as rt:
        feeds = rt.prepare(batch)
        rt.infer(feeds)
        rt.synchronize()
        out = rt.outputs()
        info = dict(rt.info)
        region = rt.timed_region
    # On the CPU nothing is device-resident and there is no device to synchronize: the row must not say so.
    assert "device-resident" not in region and "device synchronize" not in region, region
    assert info["threads"] == 1
    assert info["precision_used"] == "fp32"  # fp32 asked: never a silent bf16 (this machine has AVX-512 BF16)
    assert out[0].dtype == np.float32 and out[0].shape == (2, 1000)
    np.testing.assert_allclose(out[0], expected[0], atol=1e-3, rtol=1e-3)
    assert not rt._loaded


def test_openvino_reads_back_the_precision_it_used(artifacts, tiny) -> None:
    batch = example_batch(tiny.input, 1)
    used = {}
    for precision in ("fp32", "bf16", "auto"):
        with registry.runtimes.get("openvino")(RuntimeOptions(precision=precision)).load(
            artifacts.get("openvino")
        ) as rt:
            rt.run(batch)
            used[precision] = rt.info["precision_used"]
    assert used["fp32"] == "fp32"  # explicitly pinned, even on a CPU with AVX-512 BF16
    from deploybench.env import cpu_info

    features = cpu_info()["features"]
    if features["avx512_bf16"] or features["amx_bf16"]:
        assert used["bf16"] == "bf16" and used["auto"] == "bf16"  # what OpenVINO picks on its own here


def test_openvino_throughput_mode_keeps_its_requests_in_flight(artifacts, tiny) -> None:
    from deploybench.harness import MeasurePolicy, measure

    with registry.runtimes.get("openvino")(RuntimeOptions(mode="throughput", threads=2)).load(
        artifacts.get("openvino")
    ) as rt:
        feeds = rt.prepare(example_batch(tiny.input, 2))
        m = measure(rt, feeds, 2, MeasurePolicy.quick())
        out = rt.run(example_batch(tiny.input, 2))
        assert rt.info["mode"] == "throughput" and rt.info["infer_requests"] >= 1
        assert rt.requests_in_flight() == rt.info["infer_requests"] == m.requests_in_flight
    assert out[0].shape == (2, 1000)
    assert m.items_per_call == 2  # each sample is one request on the batch
    assert m.throughput == pytest.approx(2 * len(m.samples_ms) / m.window_seconds)


@pytest.mark.parametrize("dynamic", [False, True])
def test_openvino_compiles_the_static_shape_of_the_timed_batch(artifacts, tiny, dynamic: bool) -> None:
    ir = artifacts.get("openvino")
    assert ir.batch.dynamic  # the IR on disk keeps its batch range; the runtime fixes it per cell
    options = RuntimeOptions(mode="latency", threads=1, dynamic_batch=dynamic)
    with registry.runtimes.get("openvino")(options).load(ir) as rt:
        rt.prepare(example_batch(tiny.input, 3))
        compiled, _ = rt.compile("latency", 3)
        shape = compiled.inputs[0].get_partial_shape()
        assert shape.is_dynamic is dynamic
        if not dynamic:
            assert shape.to_shape()[0] == 3 and list(shape.to_shape()[1:]) == list(tiny.input.shape)
        assert rt.info["batch_shape"] == ("dynamic" if dynamic else "static")
        assert rt.run(example_batch(tiny.input, 3))[0].shape == (3, 1000)


def test_openvino_keeps_each_requests_own_latency_beside_the_host_time(artifacts, tiny) -> None:
    # benchmark_app prints InferRequest.latency; the row keeps it, and the host p50 is never below it.
    from deploybench.harness import MeasurePolicy, measure

    options = RuntimeOptions(mode="latency", threads=1)
    with registry.runtimes.get("openvino")(options).load(artifacts.get("openvino")) as rt:
        feeds = rt.prepare(example_batch(tiny.input, 1))
        m = measure(rt, feeds, 1, MeasurePolicy.quick())
    assert m.own_clock and "InferRequest.latency" in m.own_clock
    assert m.own_stats is not None and len(m.own_samples_ms) == len(m.samples_ms)
    assert all(0 < own <= host for own, host in zip(m.own_samples_ms, m.samples_ms))


def test_openvino_fp16_ir_is_labelled_by_what_it_computes(artifacts, tiny) -> None:
    import openvino as ov

    from deploybench.parity import DEFAULT_TOLERANCES, tolerance_for

    ir = artifacts.get("openvino", "fp16")
    weights = {
        op.get_output_element_type(0).get_type_name()
        for op in ov.Core().read_model(str(ir.file)).get_ops()
        if op.get_type_name() == "Constant" and op.get_output_element_type(0).is_real()
    }
    assert "f16" in weights  # the IR really stores its weights in fp16
    with registry.runtimes.get("openvino")(RuntimeOptions(precision="fp16", threads=1)).load(ir) as rt:
        rt.run(example_batch(tiny.input, 1))
        compute, label = rt.info["float_compute"], rt.info["precision_used"]
    assert label == ("fp16" if compute == "fp16" else f"fp16+{compute}")  # read back, not assumed
    assert tolerance_for(label).max_error >= DEFAULT_TOLERANCES["fp16"].max_error


def test_runtime_refuses_wrong_format(artifacts) -> None:
    with pytest.raises(UnsupportedError, match="runs onnx artifacts, not openvino"):
        registry.runtimes.get("onnxruntime")().load(artifacts.get("openvino"))


def test_onnxruntime_refuses_cuda_without_the_gpu_package(artifacts) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    with pytest.raises(UnsupportedError, match=r"deploybench\[gpu\]"):
        registry.runtimes.get("onnxruntime")(RuntimeOptions(device="cuda")).load(artifacts.get("onnx"))


def test_corrupt_artifact_is_a_load_error(artifacts, tmp_path) -> None:
    import shutil

    folder = tmp_path / "broken"
    shutil.copytree(artifacts.get("onnx").path, folder)
    (folder / "model.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(RuntimeLoadError, match="export it again"):
        registry.runtimes.get("onnxruntime")().load(Artifact.load(folder))


@pytest.mark.parametrize("runtime", cpu_runtimes())
def test_a_failed_load_still_reaches_unload(runtime: str, artifacts, tmp_path, monkeypatch) -> None:
    """What a load made before it failed is released: ``_unload`` runs on the state ``__init__`` declared."""
    import shutil

    cls = registry.runtimes.get(runtime)
    fmt = cls.formats[0]
    if fmt == "pytorch":
        pytest.skip("the in-memory module has no file to break")
    folder = tmp_path / "broken"
    shutil.copytree(artifacts.get(fmt).path, folder)
    broken = Artifact.load(folder)
    broken.file.write_bytes(b"not a model")
    unloads = []
    real_unload = cls._unload
    monkeypatch.setattr(cls, "_unload", lambda self: unloads.append(self) or real_unload(self))
    rt = cls()
    with pytest.raises(RuntimeLoadError):
        rt.load(broken)
    assert unloads == [rt] and not rt._loaded


def test_physical_cores_count_smt_siblings_once(tmp_path) -> None:
    from deploybench.runtimes.base import physical_cores

    for cpu, core in enumerate([0, 1, 0, 1]):  # 4 logical CPUs, 2 cores with 2 threads each
        topology = tmp_path / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "core_id").write_text(f"{core}\n")
        (topology / "physical_package_id").write_text("0\n")
    assert physical_cores({0, 1, 2, 3}, sysfs=tmp_path) == 2
    assert physical_cores({0, 2}, sysfs=tmp_path) == 1  # affinity to one core's two threads
    assert physical_cores({0, 1, 7}, sysfs=tmp_path) == 3  # no topology for cpu7: it counts as a core


def test_tf32_is_a_cuda_precision_only() -> None:
    for name in ("torch", "torchscript", "torch-compile", "onnxruntime"):
        cls = registry.runtimes.get(name)
        assert cls.supports(cls.formats[0], "cuda", "tf32") is None
        reason = cls.supports(cls.formats[0], "cpu", "tf32")
        assert reason is not None and "use fp32" in reason
    # AOTInductor decides TF32 when it compiles; its packages are compiled with TF32 off.
    assert registry.runtimes.get("aoti").supports("aoti", "cuda", "tf32") is not None
