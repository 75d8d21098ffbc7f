"""Shared fixtures: one cache per test session, tiny models, artifacts exported once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deploybench import registry
from deploybench.cache import ArtifactCache
from deploybench.exporters.base import ExportOptions
from deploybench.models import ModelSpec, resolve

TINY = "test_resnet"  # timm's 160x160 test model: exports in seconds


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> ArtifactCache:
    return ArtifactCache(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep every test (and every CLI call) away from the user's real cache and history."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DEPLOYBENCH_CACHE", str(tmp_path_factory.mktemp("default-cache")))
    mp.setenv("DEPLOYBENCH_HISTORY", str(tmp_path_factory.mktemp("history") / "history.sqlite"))
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def _tf32_override_per_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """An ONNX Runtime TensorRT fp32 session sets NVIDIA_TF32_OVERRIDE=0 for its process, and a
    later tf32 row there is refused (deploybench.tf32). Each test starts with deploybench's record
    of it cleared; a library that read the variable once keeps what it read, so the GPU tests
    check TF32 flags and labels, not TF32 arithmetic."""
    from deploybench.runtimes import onnxruntime as ort_runtime
    from deploybench.tf32 import TF32_OVERRIDE

    monkeypatch.delenv(TF32_OVERRIDE, raising=False)
    monkeypatch.setattr(ort_runtime, "_tensorrt_tf32", None)


@pytest.fixture(scope="session")
def tiny() -> ModelSpec:
    return resolve(TINY)


class ArtifactStore:
    """Exports on first request, then hands out the same artifact for the whole session."""

    def __init__(self, cache: ArtifactCache, model: ModelSpec) -> None:
        self.cache, self.model = cache, model
        self._made: dict = {}

    def get(self, fmt: str, precision: str = "fp32"):
        key = (fmt, precision)
        if key not in self._made:
            exporter = registry.exporters.get(fmt)()
            artifact, _ = self.cache.get_or_export(exporter, self.model, ExportOptions(precision=precision))
            self._made[key] = artifact
        return self._made[key]


@pytest.fixture(scope="session")
def artifacts(cache: ArtifactCache, tiny: ModelSpec) -> ArtifactStore:
    return ArtifactStore(cache, tiny)


@pytest.fixture
def sample_factory_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A user's own model module on sys.path, as ``module:factory`` users would write."""
    (tmp_path / "my_models.py").write_text(
        "import torch\n"
        "def small_net():\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),\n"
        "                               torch.nn.Flatten(), torch.nn.Linear(4, 5))\n"
        "not_callable = 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_models"
