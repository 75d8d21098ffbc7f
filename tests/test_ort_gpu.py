"""ONNX Runtime's GPU paths on the CPU: provider options, node placement from a profile, CUDA graph buffers."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from deploybench.cache import ArtifactCache
from deploybench.errors import UnsupportedError, UsageError
from deploybench.runtimes.base import RuntimeOptions
from deploybench.runtimes.onnxruntime import (
    ORT_TENSORRT_CACHE,
    GraphBuffers,
    OnnxRuntime,
    fixed_output_shape,
    provider_chain,
    tensorrt_cache_dir,
)
from deploybench.runtimes.ort_profile import enable_first_run_profile, node_placement, read_profile

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is in the onnx extra")
DATA = Path(__file__).parent / "data"
# Six Node events of a real profile: ONNX Runtime 1.32, the tiny timm model on the CPU provider
# (thread statistics dropped to keep the file short).
CPU_SAMPLE = json.loads((DATA / "ort_profile_cpu_sample.json").read_text())


# -- provider options ---------------------------------------------------------------------------------


def test_tensorrt_provider_keeps_engines_in_the_cache_beside_the_artifact(artifacts, cache: ArtifactCache) -> None:
    artifact = artifacts.get("onnx")
    chain = provider_chain("TensorrtExecutionProvider", RuntimeOptions(device="cuda", precision="fp16"), artifact)
    (name, options), cuda, cpu = chain
    assert (name, cuda, cpu) == (
        "TensorrtExecutionProvider",
        ("CUDAExecutionProvider", {"use_tf32": "0"}),
        "CPUExecutionProvider",
    )
    engines = Path(options["trt_engine_cache_path"])
    assert engines == cache.root / ORT_TENSORRT_CACHE / artifact.path.name / "no-tf32" and engines.is_dir()
    assert options["trt_engine_cache_enable"] is True and options["trt_timing_cache_enable"] is True
    assert Path(options["trt_timing_cache_path"]) == cache.root / ORT_TENSORRT_CACHE  # one, shared by every build
    assert options["trt_fp16_enable"] is True
    fp32 = provider_chain("TensorrtExecutionProvider", RuntimeOptions(device="cuda"), artifact)[0][1]
    assert fp32["trt_fp16_enable"] is False and fp32["trt_engine_cache_path"] == str(engines)
    # TF32 is baked into an engine, and the provider's file names leave it out: tf32 engines live apart.
    tf32 = provider_chain("TensorrtExecutionProvider", RuntimeOptions(device="cuda", precision="tf32"), artifact)[0][1]
    assert Path(tf32["trt_engine_cache_path"]) == engines.parent / "tf32"
    assert tf32["trt_timing_cache_path"] == options["trt_timing_cache_path"]
    # The engine folder is neither an artifact of the cache nor left behind by `cache clear`.
    assert all(entry.path.name != ORT_TENSORRT_CACHE for entry in cache.entries())


def test_engine_folder_of_an_in_memory_artifact_is_in_the_default_cache(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DEPLOYBENCH_CACHE", str(tmp_path))
    assert tensorrt_cache_dir(SimpleNamespace(path=None)) == tmp_path / ORT_TENSORRT_CACHE / "modules" / "no-tf32"


def test_cuda_provider_options(artifacts) -> None:
    artifact = artifacts.get("onnx")
    assert provider_chain("CUDAExecutionProvider", RuntimeOptions(device="cuda"), artifact) == [
        ("CUDAExecutionProvider", {"use_tf32": "0"}),
        "CPUExecutionProvider",
    ]
    graphs = provider_chain("CUDAExecutionProvider", RuntimeOptions(device="cuda", cuda_graphs=True), artifact)
    assert graphs == [("CUDAExecutionProvider", {"use_tf32": "0", "enable_cuda_graph": "1"}), "CPUExecutionProvider"]
    assert provider_chain("CPUExecutionProvider", RuntimeOptions(), artifact) == ["CPUExecutionProvider"]


def test_cuda_graphs_without_a_cuda_device_are_refused_before_loading(artifacts) -> None:
    with pytest.raises(UsageError, match="CUDA graphs need --device cuda"):
        OnnxRuntime(RuntimeOptions(cuda_graphs=True)).load(artifacts.get("onnx"))


def test_cuda_graphs_stay_off_the_tensorrt_providers_cuda_fallback(artifacts) -> None:
    # ONNX Runtime refuses to capture a CUDA graph unless every node is on CUDA; TensorRT takes them.
    chain = provider_chain(
        "TensorrtExecutionProvider", RuntimeOptions(device="cuda", cuda_graphs=True), artifacts.get("onnx")
    )
    assert chain[1] == ("CUDAExecutionProvider", {"use_tf32": "0"})
    with pytest.raises(UsageError, match="drop one of the two"):
        OnnxRuntime(RuntimeOptions(device="cuda", provider="tensorrt", cuda_graphs=True)).load(artifacts.get("onnx"))


# -- nodes left on the CPU ----------------------------------------------------------------------------


def gpu_session_sample() -> list[dict]:
    """The captured sample as a CUDA session would profile it: convolutions on CUDA, two nodes on the CPU."""
    events = [{"cat": "Session", "name": "model_run", "args": {}}]
    for event in copy.deepcopy(CPU_SAMPLE):
        event["args"]["provider"] = (
            "CPUExecutionProvider" if event["args"]["op_name"] == "MaxPool" else "CUDAExecutionProvider"
        )
        events.append(event)
    shape = copy.deepcopy(CPU_SAMPLE[0])
    shape["name"], shape["args"]["op_name"] = "Shape_42_kernel_time", "Shape"
    events.append(shape)  # ONNX Runtime keeps shape arithmetic on the CPU on purpose
    events.append({"cat": "Node", "name": "Shape_42_fence_before", "args": {"op_name": "Shape"}})  # older releases
    events.append(copy.deepcopy(events[1]))  # the same node in a second run counts once
    return events


def test_parser_reads_the_captured_cpu_profile() -> None:
    placement = node_placement(CPU_SAMPLE)
    assert placement.nodes_by_provider == {"CPUExecutionProvider": 6}
    assert placement.cpu_nodes[:2] == ["Conv:relu_nchwc", "Conv:relu_1_nchwc"]
    assert "MaxPool:max_pool2d_nchwc" in placement.cpu_nodes


def test_parser_names_the_nodes_a_gpu_provider_left_on_the_cpu() -> None:
    placement = node_placement(gpu_session_sample())
    assert placement.nodes_by_provider == {"CUDAExecutionProvider": 5, "CPUExecutionProvider": 2}
    assert placement.cpu_nodes == ["MaxPool:max_pool2d_nchwc", "Shape:Shape_42"]


def test_profiling_ends_after_one_run_and_is_parsed(artifacts) -> None:
    """A real session: profile one run, read the placement, and later runs are not profiled."""
    artifact = artifacts.get("onnx")
    with tempfile.TemporaryDirectory() as folder:
        options = ort.SessionOptions()
        enable_first_run_profile(options, Path(folder))
        session = ort.InferenceSession(str(artifact.file), options, providers=["CPUExecutionProvider"])
        feeds = {session.get_inputs()[0].name: np.zeros((1, 3, 160, 160), np.float32)}
        session.run(None, feeds)
        placement = node_placement(read_profile(session))
        assert placement.nodes_by_provider["CPUExecutionProvider"] > 10 and list(Path(folder).iterdir()) == []
        session.run(None, feeds)
        assert session.end_profiling() == ""  # nothing was collected after the first read


def test_runtime_reports_placement_from_its_first_prepared_batch(artifacts) -> None:
    """The runtime's flow, on a CPU session standing in for a GPU one: one untimed run in prepare, once."""
    runtime = OnnxRuntime(RuntimeOptions()).load(artifacts.get("onnx"))
    with tempfile.TemporaryDirectory() as folder:
        options = ort.SessionOptions()
        enable_first_run_profile(options, Path(folder))
        runtime._session = ort.InferenceSession(str(runtime.artifact.file), options, providers=["CPUExecutionProvider"])
        runtime._first_run_reads = frozenset({"placement"})
        runtime._profile_dir = tempfile.TemporaryDirectory()
        batch = np.zeros((2, 3, 160, 160), np.float32)
        runtime.prepare(batch)
        assert runtime.info["node_placement"]["nodes_by_provider"]["CPUExecutionProvider"] > 10
        runtime.info.pop("node_placement")
        runtime.prepare(batch)
        assert "node_placement" not in runtime.info  # the first batch only
    assert "node_placement" not in OnnxRuntime(RuntimeOptions()).load(artifacts.get("onnx")).info  # CPU: no profile


# -- CUDA graph buffers -------------------------------------------------------------------------------


class FakeOrtValue:
    def __init__(self, array: np.ndarray) -> None:
        self.array = np.array(array)
        self.writes = 0

    def shape(self) -> list[int]:
        return list(self.array.shape)

    def update_inplace(self, array: np.ndarray) -> None:
        assert array.shape == self.array.shape
        self.array[...] = array
        self.writes += 1


class FakeOrt:
    class OrtValue:
        created: list = []

        @classmethod
        def ortvalue_from_numpy(cls, array, device, device_id):
            assert device == "cuda"
            value = FakeOrtValue(array)
            cls.created.append(value)
            return value

        @classmethod
        def ortvalue_from_shape_and_type(cls, shape, dtype, device, device_id):
            value = FakeOrtValue(np.zeros(shape, dtype))
            cls.created.append(value)
            return value


class FakeBinding:
    def __init__(self) -> None:
        self.inputs: list = []
        self.outputs: list = []

    def bind_ortvalue_input(self, name, value) -> None:
        self.inputs.append((name, value))

    def bind_ortvalue_output(self, name, value) -> None:
        self.outputs.append((name, value))


def fake_session(*outputs: tuple[str, list, str]) -> SimpleNamespace:
    return SimpleNamespace(
        get_inputs=lambda: [SimpleNamespace(name="input")],
        get_outputs=lambda: [SimpleNamespace(name=n, shape=s, type=t) for n, s, t in outputs],
    )


def test_graph_buffers_bind_once_and_copy_each_new_input_in_place() -> None:
    FakeOrt.OrtValue.created = []
    binding = FakeBinding()
    session = fake_session(("logits", ["batch", 1000], "tensor(float)"), ("boxes", ["N", 84, 8400], "tensor(float16)"))
    buffers = GraphBuffers(FakeOrt, session, binding)
    first = np.full((4, 3, 8, 8), 1.0, np.float32)
    bound = buffers.feed(first)
    assert [name for name, _ in binding.inputs] == ["input"] and binding.inputs[0][1] is bound
    assert [(n, v.array.shape, v.array.dtype) for n, v in binding.outputs] == [
        ("logits", (4, 1000), np.float32),
        ("boxes", (4, 84, 8400), np.float16),
    ]
    second = np.full((4, 3, 8, 8), 2.0, np.float32)
    assert buffers.feed(second) is bound  # the address the graph captured
    assert bound.writes == 1 and np.array_equal(bound.array, second)  # the replay sees the new input
    assert len(binding.inputs) == 1 and len(binding.outputs) == 2 and len(FakeOrt.OrtValue.created) == 3
    with pytest.raises(UnsupportedError, match=r"replays shape \(4, 3, 8, 8\), not \(2, 3, 8, 8\)"):
        buffers.feed(np.zeros((2, 3, 8, 8), np.float32))


def test_graph_buffers_refuse_outputs_they_cannot_allocate_up_front() -> None:
    assert fixed_output_shape("y", ["batch", 10], 8) == (8, 10)
    assert fixed_output_shape("y", [None, 10], 8) == (8, 10)
    with pytest.raises(UnsupportedError, match="dynamic dimension 'num_boxes'.*without --cuda-graphs"):
        fixed_output_shape("boxes", ["batch", "num_boxes", 4], 8)
    buffers = GraphBuffers(FakeOrt, fake_session(("s", ["batch"], "tensor(string)")), FakeBinding())
    with pytest.raises(UnsupportedError, match="tensor\\(string\\)"):
        buffers.feed(np.zeros((1, 3), np.float32))
