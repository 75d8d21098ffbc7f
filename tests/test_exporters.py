"""Every registered exporter: export a tiny model, load it back, match PyTorch; the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import available_exporters

from deploybench import registry
from deploybench.artifact import Artifact, BatchRange
from deploybench.cache import ArtifactCache
from deploybench.errors import UnsupportedError
from deploybench.exporters.base import ExportOptions
from deploybench.inputs import example_batch
from deploybench.models import resolve
from deploybench.runtimes.base import RuntimeOptions


def _reference(tiny, batch):
    with registry.runtimes.get("torch")().load(Artifact.from_module(tiny)) as rt:
        return rt.run(batch)


@pytest.mark.parametrize("fmt", available_exporters())
def test_export_reload_and_match(fmt: str, artifacts, tiny) -> None:
    artifact = artifacts.get(fmt)
    manifest = artifact.manifest
    assert artifact.file.is_file()
    runtime = registry.exporters.get(fmt).check_runtime
    assert runtime and manifest["checked_with"] == runtime and fmt in registry.runtimes.get(runtime).formats
    assert manifest["size_bytes"] == sum(f["size"] for f in manifest["files"].values()) > 0
    assert manifest["source_hash"] and manifest["export_seconds"] > 0
    assert artifact.outputs[0].shape == ["batch", 1000]
    batch = example_batch(tiny.input, 3, seed=5)  # 3: not the batch it was traced with
    with registry.runtimes.get(runtime)().load(Artifact.load(artifact.path)) as rt:
        out = rt.run(batch)
    np.testing.assert_allclose(out[0], _reference(tiny, batch)[0], atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("fmt", available_exporters())
def test_second_export_is_a_cache_hit(fmt: str, artifacts, cache, tiny) -> None:
    first = artifacts.get(fmt)
    again, hit = cache.get_or_export(registry.exporters.get(fmt)(), tiny, ExportOptions())
    assert hit and again.path == first.path and again.manifest["created"] == first.manifest["created"]


def test_force_rebuilds(cache, tiny, artifacts) -> None:
    first = artifacts.get("torchscript")
    created = first.manifest["created"]
    artifact, hit = cache.get_or_export(registry.exporters.get("torchscript")(), tiny, ExportOptions(), force=True)
    assert not hit and artifact.path == first.path
    assert Artifact.load(artifact.path).integrity_problem() is None
    assert artifact.manifest["created"] >= created


def test_different_options_are_different_entries(cache, tiny) -> None:
    exporter = registry.exporters.get("onnx")()
    assert cache.key(exporter, tiny, ExportOptions()) != cache.key(exporter, tiny, ExportOptions(opset=17))
    # A field the ONNX exporter ignores must not split the cache.
    assert cache.key(exporter, tiny, ExportOptions()) == cache.key(exporter, tiny, ExportOptions(script=True))


def test_openvino_int8_is_quantized_with_flagged_stand_in_calibration(artifacts) -> None:
    fp32, int8 = artifacts.get("openvino"), artifacts.get("openvino", "int8")
    assert int8.precision == "int8"
    # Not the user's data: photo crops (or noise) with the seed, flagged with how to pass real images.
    assert "seed 7" in int8.manifest["calibration"] and "pass --calib-data" in int8.manifest["calibration"]
    assert int8.size_bytes() < 0.5 * fp32.size_bytes()  # int8 weights are a quarter of fp32's
    assert (
        "FakeQuantize" in (int8.path / "model.xml").read_text()
        or "FakeConvert" in (int8.path / "model.xml").read_text()
    )


def test_onnx_records_which_exporter_and_opset(artifacts) -> None:
    manifest = artifacts.get("onnx").manifest
    assert manifest["onnx_exporter"] in ("dynamo", "torchscript")
    assert manifest["opset"] >= 17


@pytest.mark.parametrize(
    "fmt, options, fragment",
    [
        ("onnx", ExportOptions(precision="int8"), "supported: fp32, fp16"),
        ("openvino", ExportOptions(device="cuda"), "supported: cpu, gpu"),
        ("aoti", ExportOptions(precision="int4"), "supported:"),
    ],
)
def test_unsupported_combinations_are_refused_up_front(fmt: str, options: ExportOptions, fragment: str, tiny) -> None:
    with pytest.raises(UnsupportedError, match=fragment):
        registry.exporters.get(fmt)().validate(tiny, options)


def test_batch_range_parsing() -> None:
    assert BatchRange.parse("8") == BatchRange(8, 8, 8)
    assert BatchRange.parse("1:64") == BatchRange(1, 1, 64)
    assert BatchRange.parse("1:8:64") == BatchRange(1, 8, 64)
    for bad in ("0:4", "8:1", "a:b", "1:2:3:4"):
        with pytest.raises(Exception, match="malformed batch range"):
            BatchRange.parse(bad)


def test_static_batch_export_keeps_its_batch(cache, tiny) -> None:
    artifact, _ = cache.get_or_export(
        registry.exporters.get("openvino")(), tiny, ExportOptions(batch=BatchRange(2, 2, 2))
    )
    assert artifact.batch == BatchRange(2, 2, 2)
    with registry.runtimes.get("openvino")(RuntimeOptions()).load(artifact) as rt:
        out = rt.run(example_batch(tiny.input, 2))
    assert out[0].shape == (2, 1000)


def test_aoti_packages_take_their_thread_count_from_the_runtime(tmp_path: Path) -> None:
    """#16.4: Inductor baked `omp parallel num_threads(N)` (N = torch's threads at export, when unlike the core
    count) into every CPU kernel, so a package ran N threads whatever --threads said. Exported here under a
    thread count unlike the core count, no kernel may fix its thread count."""
    import os
    import re
    import zipfile

    import torch

    if not registry.exporters.availability("aoti").ok:
        pytest.skip("torch.export/AOTInductor is not available here")
    before = torch.get_num_threads()
    torch.set_num_threads((os.cpu_count() or 1) + 1)
    try:
        artifact, _ = ArtifactCache(tmp_path).get_or_export(
            registry.exporters.get("aoti")(), resolve("test_resnet"), ExportOptions()
        )
    finally:
        torch.set_num_threads(before)
    with zipfile.ZipFile(artifact.file) as package:
        kernels = "".join(
            package.read(name).decode(errors="ignore") for name in package.namelist() if name.endswith(".cpp")
        )
    regions = re.findall(r"#pragma omp parallel[^\n]*", kernels)
    assert regions, "no parallel kernel was generated: the check would prove nothing"
    assert not [region for region in regions if "num_threads" in region]
    assert artifact.manifest["inductor_configs"] == {"cpp.dynamic_threads": True}
