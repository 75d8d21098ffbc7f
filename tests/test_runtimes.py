"""Every CPU runtime: loads its artifact, matches PyTorch, records what it really used."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import cpu_runtimes
from deploybench import registry
from deploybench.artifact import Artifact
from deploybench.errors import RuntimeLoadError, UnsupportedError
from deploybench.models import example_batch
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
    with registry.runtimes.get(runtime)(options).load(_artifact_for(runtime, artifacts, tiny)) as rt:
        feeds = rt.prepare(batch)
        rt.infer(feeds)
        rt.synchronize()
        out = rt.outputs()
        info = dict(rt.info)
        region = rt.timed_region
        assert rt.items_per_call(2) >= 2
    # On the CPU nothing is device-resident and there is no device to synchronize: the row must not say so.
    assert "device-resident" not in region and "device synchronize" not in region, region
    assert info["threads"] == 1
    assert info["precision_used"] in ("fp32", "bf16")
    assert out[0].dtype == np.float32 and out[0].shape == (2, 1000)
    np.testing.assert_allclose(out[0], expected[0], atol=1e-3, rtol=1e-3)
    assert not rt._loaded


def test_openvino_reads_back_the_precision_it_used(artifacts, tiny) -> None:
    batch = example_batch(tiny.input, 1)
    used = {}
    for precision in ("fp32", "bf16", "auto"):
        with registry.runtimes.get("openvino")(RuntimeOptions(precision=precision)).load(artifacts.get("openvino")) as rt:
            rt.run(batch)
            used[precision] = rt.info["precision_used"]
    assert used["fp32"] == "fp32"  # explicitly pinned, even on a CPU with AVX-512 BF16
    from deploybench.env import cpu_info

    if cpu_info()["features"]["avx512_bf16"] or cpu_info()["features"]["amx_bf16"]:
        assert used["bf16"] == "bf16" and used["auto"] == "bf16"  # what OpenVINO picks on its own here


def test_openvino_throughput_mode_runs_parallel_requests(artifacts, tiny) -> None:
    with registry.runtimes.get("openvino")(RuntimeOptions(mode="throughput")).load(artifacts.get("openvino")) as rt:
        out = rt.run(example_batch(tiny.input, 2))
        assert rt.info["mode"] == "throughput" and rt.info["infer_requests"] >= 1
        assert rt.items_per_call(2) == 2 * rt.info["infer_requests"]
    assert out[0].shape == (2, 1000)


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
