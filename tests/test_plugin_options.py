"""Each plugin's own options: declared, validated before any work, and the exporters' cache key."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from deploybench import registry
from deploybench.cli import main
from deploybench.errors import UsageError
from deploybench.exporters.base import ExportOptions
from deploybench.plugin_options import PluginOptions
from deploybench.runtimes.base import RuntimeOptions


@pytest.mark.parametrize("name", registry.runtimes.names())
def test_every_runtime_declares_options_it_can_read(name: str) -> None:
    options_type = registry.runtimes.get(name).Options
    assert issubclass(options_type, PluginOptions)
    shared = {f.name for f in fields(RuntimeOptions)}
    assert {f.name for f in fields(options_type)} <= shared  # picked from the shared settings
    assert isinstance(options_type.pick(RuntimeOptions()), options_type)  # the defaults are valid


@pytest.mark.parametrize("name", registry.exporters.names())
def test_every_exporter_declares_options_that_key_its_cache(name: str) -> None:
    exporter = registry.exporters.get(name)()
    assert {f.name for f in fields(exporter.Options)} <= {f.name for f in fields(ExportOptions)}
    assert {"precision"} <= {f.name for f in fields(exporter.Options)}
    key = exporter.cache_identity(ExportOptions())["options"]
    assert set(key) == {f.name for f in fields(exporter.Options)}
    for field in fields(exporter.Options):  # every declared setting changes the key
        if field.name in ("opset", "calib_size", "workspace_gb", "script", "simplify"):
            changed = {"opset": 17, "calib_size": 32, "workspace_gb": 2.0, "script": True, "simplify": True}
            other = exporter.cache_identity(ExportOptions(**{field.name: changed[field.name]}))["options"]
            assert other != key, field.name


def test_the_onnx_cache_key_is_the_one_artifacts_were_cached_under() -> None:
    # The key's fields are what they were before options were declared: old caches still hit.
    key = registry.exporters.get("onnx")().cache_identity(ExportOptions())["options"]
    assert key == {"precision": "fp32", "batch": {"min": 1, "opt": 1, "max": 64}, "opset": None, "simplify": False}


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--runtimes", "openvino", "--mode", "fast"], "--mode (OpenVINO's performance hint) 'fast' is not one of"),
        (["--runtimes", "torch-compile", "--compile-mode", "max_autotune"], "--compile-mode 'max_autotune'"),
        (["--runtimes", "onnxruntime", "--cuda-graphs"], "CUDA graphs need --device cuda"),
    ],
)
def test_a_mistyped_runtime_option_is_one_line_and_exit_2_before_any_work(
    argv: list[str], fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code = main(["compare", "--models", "test_resnet", *argv, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert not (tmp_path / "out" / "results.json").exists()


def test_an_export_option_out_of_range_is_refused_before_the_export(tmp_path: Path, capsys) -> None:
    assert main(["export", "test_resnet", "--to", "onnx", "--opset", "3", "--cache", str(tmp_path)]) == 2
    assert "--opset 3 must be 7 or more" in capsys.readouterr().err
    assert not any(tmp_path.glob("*onnx*"))
    with pytest.raises(UsageError, match="--calib-size 0"):
        registry.exporters.get("openvino").Options.pick(ExportOptions(calib_size=0))


def test_an_exporter_still_declaring_key_options_is_told_what_to_declare() -> None:
    from deploybench.exporters.base import Exporter

    with pytest.raises(TypeError, match="declare Options"):

        class Legacy(Exporter):
            name = "legacy"
            key_options = ("precision", "opset")
