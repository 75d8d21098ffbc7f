"""Cache integrity: content hashes in the manifest, damaged entries rebuilt (never loaded
blindly), and two processes sharing one cache through its lock."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import faulty_plugins
import pytest
from faulty_plugins import EXPORT_LOG_ENV, TINY_NET

from deploybench import registry
from deploybench.artifact import MANIFEST, Artifact
from deploybench.cache import ArtifactCache
from deploybench.exporters.base import ExportOptions
from deploybench.files import file_sha256
from deploybench.models import resolve

TESTS_DIR = str(Path(__file__).resolve().parent)


@pytest.fixture
def exported(tmp_path: Path) -> tuple[ArtifactCache, Artifact]:
    """A real TorchScript export of the tiny model in a cache of its own (this test damages it)."""
    cache = ArtifactCache(tmp_path / "cache")
    artifact, hit = cache.get_or_export(registry.exporters.get("torchscript")(), resolve(TINY_NET), ExportOptions())
    assert not hit
    return cache, artifact


def test_manifest_records_size_and_content_hash_of_every_file(exported: tuple[ArtifactCache, Artifact]) -> None:
    _, artifact = exported
    files = artifact.manifest["files"]
    assert artifact.main_file in files
    for name, entry in files.items():
        assert entry["sha256"] == file_sha256(artifact.path / name)
        assert entry["size"] == (artifact.path / name).stat().st_size


def flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 3)


def garble_manifest(folder: Path) -> None:
    (folder / MANIFEST).write_text('{"format": "torchscript", "main_fi')


DAMAGE: dict[str, tuple[Callable[[Artifact], None], str]] = {
    "flipped bytes": (lambda a: flip_bytes(a.file), "does not match its content hash"),
    "truncated": (lambda a: truncate(a.file), "the manifest says"),
    "deleted": (lambda a: a.file.unlink(), "is missing"),
    "garbled manifest": (lambda a: garble_manifest(a.path), "unreadable manifest"),
}


def assert_runs_like_the_module(artifact: Artifact) -> None:
    import numpy as np

    from deploybench.inputs import example_batch
    from deploybench.runtimes.base import RuntimeOptions

    spec = resolve(TINY_NET)
    batch = example_batch(spec.input, 2)
    results = []
    for runtime, target in (("torchscript", artifact), ("torch", Artifact.from_module(spec))):
        with registry.runtimes.get(runtime)(RuntimeOptions(threads=1)).load(target) as rt:
            results.append(rt.run(batch)[0])
    np.testing.assert_allclose(results[0], results[1], rtol=1e-4, atol=1e-5)


def export_again(cache: ArtifactCache) -> tuple[Artifact, bool]:
    return cache.get_or_export(registry.exporters.get("torchscript")(), resolve(TINY_NET), ExportOptions())


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_entry_is_detected_and_rebuilt(
    exported: tuple[ArtifactCache, Artifact], damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache, artifact = exported
    spoil, why = DAMAGE[damage]
    spoil(artifact)
    with caplog.at_level(logging.WARNING, logger="deploybench.cache"):
        rebuilt, hit = export_again(cache)
    assert not hit  # the damaged entry was not handed out
    (warning,) = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert why in warning and "rebuilding" in warning and artifact.path.name in warning
    assert rebuilt.path == artifact.path
    assert rebuilt.integrity_problem() is None
    assert_runs_like_the_module(rebuilt)
    assert export_again(cache)[1]  # and the rebuilt entry is trusted again


def test_lookup_refuses_a_damaged_entry_and_removes_it(exported: tuple[ArtifactCache, Artifact]) -> None:
    cache, artifact = exported
    assert cache.lookup(artifact.path) is not None
    flip_bytes(artifact.file)
    assert cache.lookup(artifact.path) is None
    assert not artifact.path.exists()


def test_a_damaged_entry_is_not_loaded_by_a_sweep(
    tmp_path: Path, exported: tuple[ArtifactCache, Artifact], caplog: pytest.LogCaptureFixture
) -> None:
    """The sweep goes through the cache, so a corrupt file is rebuilt before any cell loads it."""
    from deploybench.harness import MeasurePolicy
    from deploybench.results import Results
    from deploybench.sweep import Sweep, SweepConfig

    cache, artifact = exported
    flip_bytes(artifact.file)
    config = SweepConfig(
        models=(TINY_NET,),
        runtimes=("torchscript",),
        batches=(2,),
        policy=MeasurePolicy.quick(),
        isolate=False,
        parity_images=2,
    )
    with caplog.at_level(logging.WARNING, logger="deploybench.cache"):
        results = Sweep(config, cache, Results(), work_dir=tmp_path / "refs").run()
    assert "damaged" in caplog.text
    (row,) = results.rows
    assert row.status == "ok" and row.parity_verdict == "pass"
    assert row.artifact.cache_hit is False


CONCURRENT_EXPORT = """
import sys
from pathlib import Path
import faulty_plugins
from deploybench.cache import ArtifactCache
from deploybench.exporters.base import ExportOptions
from deploybench.models import resolve

faulty_plugins.register_all()
spec = resolve(faulty_plugins.TINY_NET)
print("ready", flush=True)
sys.stdin.readline()  # both processes start the export together
artifact, hit = ArtifactCache(Path(sys.argv[1])).get_or_export(faulty_plugins.SlowExporter(), spec, ExportOptions())
print("hit" if hit else "exported", artifact.path, flush=True)
"""


def test_two_processes_sharing_a_cache_export_once_and_agree(tmp_path: Path) -> None:
    root, log = tmp_path / "cache", tmp_path / "exports.log"
    env = {k: v for k, v in os.environ.items() if k != faulty_plugins.GUARD_ENV}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS_DIR, env.get("PYTHONPATH")) if p)
    env[EXPORT_LOG_ENV] = str(log)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_EXPORT, str(root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outcomes = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outcomes]
    results = sorted(out.split()[0] for out, _ in outcomes)
    assert results == ["exported", "hit"]  # the second waited on the lock, then found the entry
    assert len(log.read_text().splitlines()) == 1  # exactly one real export ran
    paths = {out.split()[1] for out, _ in outcomes}
    assert len(paths) == 1
    entry = Artifact.load(Path(paths.pop()))
    assert entry.integrity_problem() is None
    assert json.loads((entry.path / MANIFEST).read_text())["format"] == "fault-slow"
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp-")]


def test_a_full_disk_while_caching_is_a_cache_error_and_leaves_nothing(tmp_path, monkeypatch) -> None:
    """OSError from the cache's own writes (here the final rename) becomes one CacheError line."""
    import errno
    import os

    from deploybench import registry
    from deploybench.cache import ArtifactCache
    from deploybench.errors import CacheError
    from deploybench.exporters.base import ExportOptions
    from deploybench.models import resolve

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    cache = ArtifactCache(tmp_path / "cache")
    monkeypatch.setattr("deploybench.cache.os.rename", full_disk)
    with pytest.raises(CacheError, match="No space left on device.*free some space"):
        cache.get_or_export(registry.exporters.get("torchscript")(), resolve("test_resnet"), ExportOptions())
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [".locks"]  # no half entry, no staging folder
