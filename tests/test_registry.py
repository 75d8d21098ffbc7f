"""The plugin registries: entry points, aliases, availability, programmatic registration."""

from __future__ import annotations

import pytest

from deploybench import registry
from deploybench.errors import MissingDependencyError, UnknownNameError
from deploybench.runtimes.base import Runtime

BUILTIN_EXPORTERS = {"torchscript", "onnx", "openvino", "tensorrt", "aoti"}
BUILTIN_RUNTIMES = {"torch", "torch-compile", "torchscript", "onnxruntime", "openvino", "tensorrt", "aoti"}


def test_builtins_come_from_entry_points() -> None:
    assert set(registry.exporters.names()) >= BUILTIN_EXPORTERS
    assert set(registry.runtimes.names()) >= BUILTIN_RUNTIMES
    assert {"timm", "ultralytics", "python", "onnx"} <= set(registry.sources.names())


@pytest.mark.parametrize(
    "alias, name", [("ts", "torchscript"), ("ov", "openvino"), ("trt", "tensorrt"), ("pt2", "aoti")]
)
def test_short_format_names(alias: str, name: str) -> None:
    assert registry.exporters.canonical(alias) == name


def test_unknown_name_lists_choices_and_closest_match() -> None:
    with pytest.raises(UnknownNameError) as info:
        registry.runtimes.get("onnxruntim")
    message = str(info.value)
    assert "did you mean 'onnxruntime'" in message
    assert "valid:" in message and "openvino" in message


class _NeedsMissingLibrary(Runtime):
    name = "needs-missing"
    formats = ("onnx",)
    requires = ("no_such_library_xyz",)
    extra = "special"

    def _load(self, artifact):  # pragma: no cover - never loads
        raise AssertionError

    def prepare(self, batch):  # pragma: no cover
        raise AssertionError

    def infer(self, feeds):  # pragma: no cover
        raise AssertionError

    def outputs(self):  # pragma: no cover
        raise AssertionError


@pytest.fixture
def missing_plugin():
    registry.runtimes.register(_NeedsMissingLibrary)
    yield _NeedsMissingLibrary
    registry.runtimes.unregister(_NeedsMissingLibrary.name)


def test_missing_library_is_unavailable_with_the_extra_named(missing_plugin) -> None:
    availability = registry.runtimes.availability("needs-missing")
    assert not availability.ok
    assert "deploybench[special]" in availability.reason
    with pytest.raises(MissingDependencyError, match=r"pip install 'deploybench\[special\]'"):
        registry.runtimes.require("needs-missing")


def test_registered_plugins_are_remembered_for_workers(missing_plugin) -> None:
    assert __name__ in registry.dynamic_plugin_modules()


PRECISIONS = {"fp32", "tf32", "fp16", "bf16", "int8", "auto"}
DEVICES = {"cpu", "cuda", "gpu", "auto"}


@pytest.mark.parametrize("name", registry.exporters.names())
def test_every_exporter_declares_valid_capabilities(name: str) -> None:
    cls = registry.exporters.get(name)
    assert cls.name == name and name.isidentifier()
    assert cls.precisions and set(cls.precisions) <= PRECISIONS
    assert cls.devices and set(cls.devices) <= DEVICES
    assert set(cls.keep_fp32_precisions) <= set(cls.precisions)
    assert cls.in_memory or (cls.suffix.startswith(".") and len(cls.suffix) > 1)
    assert all(module.replace(".", "_").isidentifier() for module in cls.requires)
    # The runtime that checks an export loads this format.
    assert cls.check_runtime is not None and name in registry.runtimes.get(cls.check_runtime).formats


@pytest.mark.parametrize("name", registry.runtimes.names())
def test_every_runtime_declares_valid_capabilities(name: str) -> None:
    cls = registry.runtimes.get(name)
    assert cls.name == name
    assert cls.formats and all(fmt in registry.exporters.names() for fmt in cls.formats)
    assert cls.precisions and set(cls.precisions) <= PRECISIONS
    assert set(cls.cuda_only_precisions) <= set(cls.precisions)
    assert cls.devices and set(cls.devices) <= DEVICES
    assert isinstance(cls.timed_region, str) and len(cls.timed_region) > 10


def test_first_line_of_library_errors() -> None:
    from deploybench.errors import first_line

    assert first_line(RuntimeError("\n  graph broken at node 3\ntraceback detail\n")) == "graph broken at node 3"
    assert first_line(RuntimeError("")) == "RuntimeError"  # libraries sometimes raise without a message


def test_known_precisions_come_from_the_capability_tables() -> None:
    """The valid --precisions are what the plugins declare: a plugin's own precision becomes valid with it."""
    declared = {p for reg in (registry.exporters, registry.runtimes) for cls in reg for p in cls.precisions}
    assert set(registry.known_precisions()) == declared and "int4" not in declared

    class Int4Runtime(_NeedsMissingLibrary):
        name = "int4-runtime"
        precisions = ("int4",)

    registry.runtimes.register(Int4Runtime)
    try:
        assert "int4" in registry.known_precisions()
    finally:
        registry.runtimes.unregister("int4-runtime")


def test_a_folder_of_type_stubs_is_not_the_library(tmp_path, monkeypatch) -> None:
    (tmp_path / "stubbed_only").mkdir()
    (tmp_path / "stubbed_only" / "__init__.pyi").write_text("def f() -> int: ...\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    availability = registry.check_requirements(("stubbed_only",), "tensorrt")
    assert not availability.ok and "'stubbed_only' is not installed" in availability.reason
    assert registry.check_requirements(("json",), None).ok
