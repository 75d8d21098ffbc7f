"""Precision labels that are true: IEEE fp32 where a row says fp32, tf32 where it says tf32, fp16 that runs."""

from __future__ import annotations

import numpy as np
import pytest

from deploybench import registry
from deploybench.artifact import Artifact
from deploybench.errors import RuntimeLoadError, UnsupportedError
from deploybench.exporters.base import ExportOptions
from deploybench.inputs import example_batch
from deploybench.runtimes import onnxruntime as ort_runtime
from deploybench.runtimes.base import RuntimeOptions
from deploybench.runtimes.onnxruntime import TF32_OVERRIDE, pin_tensorrt_tf32, provider_config

GPU_PROVIDERS = ["CUDAExecutionProvider", "TensorrtExecutionProvider", "CPUExecutionProvider"]


@pytest.mark.parametrize("precision, tf32", [("fp32", "0"), ("fp16", "0"), ("tf32", "1")])
def test_onnxruntime_cuda_provider_sets_tf32_from_the_precision(precision: str, tf32: str) -> None:
    providers = provider_config(RuntimeOptions(device="cuda", precision=precision), GPU_PROVIDERS)
    assert providers[0] == ("CUDAExecutionProvider", {"use_tf32": tf32})
    assert providers[-1] == "CPUExecutionProvider"


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_onnxruntime_tensorrt_provider_turns_tf32_off_for_the_process(
    precision: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The provider has no use_tf32 option; NVIDIA_TF32_OVERRIDE=0 is the switch, and it holds per process.
    environ: dict[str, str] = {}
    pin_tensorrt_tf32(precision, environ)
    assert environ == {TF32_OVERRIDE: "0"}
    pin_tensorrt_tf32("fp32", environ)  # the same setting again: fine
    with pytest.raises(UnsupportedError, match="already made a TensorRT-provider session with TF32 off"):
        pin_tensorrt_tf32("tf32", environ)


@pytest.mark.parametrize(("precision", "seen"), [("fp32", "0"), ("fp16", "0"), ("tf32", None)])
def test_onnxruntime_sets_the_tf32_switch_before_its_tensorrt_session_exists(
    precision: str, seen: str | None, artifacts, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider reads NVIDIA_TF32_OVERRIDE when it starts: it must be set before the session is made."""
    import onnxruntime

    made_with: list[str | None] = []

    class Session:  # stands in for a TensorRT-provider session; records the switch as it is made
        def __init__(self, *args: object, **kwargs: object) -> None:
            import os

            made_with.append(os.environ.get(TF32_OVERRIDE))
            raise RuntimeError("no TensorRT here")

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: GPU_PROVIDERS)
    monkeypatch.setattr(onnxruntime, "InferenceSession", Session)
    options = RuntimeOptions(device="cuda", provider="tensorrt", precision=precision)
    with pytest.raises(RuntimeLoadError, match="no TensorRT here"):
        ort_runtime.OnnxRuntime(options)._load(artifacts.get("onnx"))
    assert made_with == [seen]


def test_onnxruntime_tensorrt_provider_tf32_keeps_tf32_or_says_why_not(monkeypatch: pytest.MonkeyPatch) -> None:
    environ: dict[str, str] = {}
    pin_tensorrt_tf32("tf32", environ)
    assert TF32_OVERRIDE not in environ
    with pytest.raises(UnsupportedError, match="with TF32 on"):
        pin_tensorrt_tf32("fp32", environ)
    monkeypatch.setattr(ort_runtime, "_tensorrt_tf32", None)
    with pytest.raises(UnsupportedError, match=f"{TF32_OVERRIDE}=0 in this process"):
        pin_tensorrt_tf32("tf32", {TF32_OVERRIDE: "0"})


def test_a_tf32_row_is_refused_where_the_process_turned_tf32_off(monkeypatch: pytest.MonkeyPatch) -> None:
    # NVIDIA_TF32_OVERRIDE=0 beats torch's flags and TensorRT's builder flag alike: a tf32 label would be false.
    import types

    import torch

    from deploybench.exporters.tensorrt import set_precision_flags
    from deploybench.torch_utils import set_tf32

    monkeypatch.setenv(TF32_OVERRIDE, "0")
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with pytest.raises(UnsupportedError, match="torch asks for TF32"):
        set_tf32(True)
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before  # untouched
    trt = types.SimpleNamespace(BuilderFlag=types.SimpleNamespace(TF32="TF32"), __version__="10.13")
    with pytest.raises(UnsupportedError, match="TensorRT tf32 engine build"):
        set_precision_flags(trt, types.SimpleNamespace(set_flag=print, clear_flag=print), "tf32")


def test_onnxruntime_provider_options_keep_cuda_graphs_and_refuse_what_is_missing() -> None:
    providers = provider_config(RuntimeOptions(device="cuda", cuda_graphs=True), GPU_PROVIDERS)
    assert providers[0] == ("CUDAExecutionProvider", {"use_tf32": "0", "enable_cuda_graph": "1"})
    assert provider_config(RuntimeOptions(), ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with pytest.raises(UnsupportedError, match=r"deploybench\[gpu\]"):
        provider_config(RuntimeOptions(device="cuda"), ["CPUExecutionProvider"])


def test_onnxruntime_session_on_cuda_really_has_tf32_off(artifacts) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("needs onnxruntime-gpu and a CUDA GPU to create a CUDA session")
    with registry.runtimes.get("onnxruntime")(RuntimeOptions(device="cuda")).load(artifacts.get("onnx")) as rt:
        assert rt.info["provider_options"]["CUDAExecutionProvider"]["use_tf32"] == "0"


def test_onnxruntime_fp16_exports_and_runs_on_the_cpu(cache, tiny) -> None:
    # The export's own check loads the graph in ONNX Runtime and runs one batch: it used to fail
    # with "expected: (tensor(float16))" because float32 feeds were never cast.
    artifact, _ = cache.get_or_export(registry.exporters.get("onnx")(), tiny, ExportOptions(precision="fp16"))
    assert artifact.manifest["checked_with"] == "onnxruntime"
    batch = example_batch(tiny.input, 2, seed=5)
    with registry.runtimes.get("torch")().load(Artifact.from_module(tiny)) as rt:
        expected = rt.run(batch)[0]
    with registry.runtimes.get("onnxruntime")(RuntimeOptions(precision="fp16", threads=1)).load(artifact) as rt:
        feeds = rt.prepare(batch)
        out = rt.run(batch)[0]
        # deploybench's FP16 graph keeps float32 inputs and outputs, with fp16 inside.
        assert rt.info["input_dtype"] == "float32"
        # The label is what the first run's nodes computed in: the CPU provider runs the ops it
        # has no fp16 kernel for in fp32 (on x86, convolutions and the classifier among them).
        counts = rt.info["nodes_by_precision"]
        assert set(counts) <= {"fp16", "fp32"} and counts["fp32"] >= 10
        assert rt.info["precision_used"] == "fp16+fp32"
    assert next(iter(feeds.values())).dtype == np.float32
    assert out.dtype == np.float32 and out.shape == (2, 1000)
    from deploybench.parity import compare

    assert compare([expected], [out], "classification", "fp16").passed


def test_onnxruntime_feeds_a_float16_input_in_float16(tmp_path) -> None:
    """A graph of the user's that declares a float16 input gets float16 feeds, cast outside the timed call."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)],
        "half_input",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
    )
    path = tmp_path / "half.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    from deploybench.models import resolve

    artifact = Artifact.from_onnx_file(resolve(str(path)))
    batch = np.arange(6, dtype=np.float32).reshape(2, 3)
    with registry.runtimes.get("onnxruntime")(RuntimeOptions(threads=1)).load(artifact) as rt:
        feeds = rt.prepare(batch)
        out = rt.run(batch)[0]
        assert rt.info["input_dtype"] == "float16"
    assert next(iter(feeds.values())).dtype == np.float16
    np.testing.assert_array_equal(out, batch)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


needs_cuda = pytest.mark.skipif(not _cuda(), reason="TF32 exists on CUDA GPUs only; no CUDA GPU here")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize(
    "runtime, precision, tf32",
    [
        *(
            (name, precision, precision == "tf32")
            for name in ("torch", "torchscript", "torch-compile")
            for precision in ("fp32", "tf32")
        ),
        (
            "aoti",
            "fp32",
            False,
        ),  # no tf32 precision: its package is compiled with TF32 off; cuBLAS calls read the flags
    ],
)
def test_torch_runtimes_set_tf32_from_the_precision_on_cuda(runtime: str, precision: str, tf32: bool, tiny) -> None:
    import torch

    fmt = registry.runtimes.get(runtime).formats[0]
    if fmt == "pytorch":
        artifact = Artifact.from_module(tiny, device="cuda")
    else:
        from deploybench.cache import ArtifactCache

        artifact, _ = ArtifactCache().get_or_export(registry.exporters.get(fmt)(), tiny, ExportOptions(device="cuda"))
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = not tf32  # start from the opposite
    with registry.runtimes.get(runtime)(RuntimeOptions(device="cuda", precision=precision)).load(artifact) as rt:
        rt.run(example_batch(tiny.input, 1))
        assert torch.backends.cudnn.allow_tf32 is tf32 and torch.backends.cuda.matmul.allow_tf32 is tf32
        assert rt.info["tf32"] is tf32 and rt.info["precision_used"] == precision


def test_tf32_switch_sets_both_cuda_paths() -> None:
    import torch

    from deploybench.torch_utils import set_tf32, tf32_enabled

    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        set_tf32(True)
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32 and tf32_enabled()
        set_tf32(False)
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert not tf32_enabled() and torch.get_float32_matmul_precision() == "highest"
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
