"""What a sweep computes from a model that the next run would compute again: its facts
(parameters, FLOPs) and its parity reference on given inputs, kept in the artifact cache.

A library model's facts and reference need its module built and run in the sweep's own
process (for yolov8n, the build, the FLOP count and eight reference images take about 3 s
on 2 cores), although nothing in them changes while the model, the inputs, the code and the
libraries stay the same. A record is keyed by all of those and by the CPU (kernels differ
in their last bits between instruction sets), and is written atomically. Records are used
only for models whose identity pins their outputs (``ModelSpec.pinned``: a released
library's version, an ONNX file's hash). A model from the user's own code, a ``.pt`` file
(pretrained YOLO weights included) or ``--checkpoint`` (whose load report needs the module
built) is computed every run, as before. ``deploybench cache clear`` removes the records;
nothing else prunes them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from deploybench.files import copy_file_atomic, make_ordinary, write_text_atomic
from deploybench.model_facts import ModelFacts, model_facts
from deploybench.models import ModelSpec

log = logging.getLogger(__name__)

# Bump when what a record holds changes shape.
RECORD_VERSION = 1
# The libraries that compute a reference, count FLOPs or crop the photos weights are initialised on.
COMPUTING_LIBRARIES = ("torch", "onnxruntime", "numpy", "pillow")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def _code_digest() -> str:
    """Every source file of deploybench and its runtimes: a change to how a reference is built
    or a model prepared is a new record, whatever the version number says."""
    import deploybench
    import deploybench.runtimes

    folders = [Path(deploybench.__file__).parent, *map(Path, deploybench.runtimes.__path__)]
    digest = hashlib.sha256()
    for folder in folders:
        for source in sorted(folder.rglob("*.py")):
            digest.update(str(source.relative_to(folder)).encode())
            digest.update(source.read_bytes())
    return digest.hexdigest()


@functools.cache
def _machine() -> list[Any]:
    from deploybench.env import _cpuinfo

    model, flags = _cpuinfo()
    return [model, sorted(flags)]


def arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 of named arrays (names, dtypes, shapes and bytes): what a reference was run on."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.data)  # contiguous: hashed in place, not copied
    return digest.hexdigest()


class ModelRecords:
    """Facts and references of pinned models, under ``root`` (``ArtifactCache.records_dir``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def usable(spec: ModelSpec) -> bool:
        """Whether ``spec``'s identity fixes what is computed from it (see the module's doc)."""
        return spec.pinned and not spec.ref.checkpoint

    def _key(self, spec: ModelSpec, kind: str, **extra: Any) -> str:
        material = {
            "kind": kind,
            "record_version": RECORD_VERSION,
            "code": _code_digest(),
            "model": spec.identity(),
            "libraries": {name: _version(name) for name in COMPUTING_LIBRARIES},
            "machine": _machine(),
            **extra,
        }
        return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:24]

    def facts(self, spec: ModelSpec) -> ModelFacts:
        """``model_facts(spec)``, from the record when one was kept."""
        if not self.usable(spec):
            return model_facts(spec)
        path = self.root / f"{self._key(spec, 'facts')}.facts.json"
        try:
            return ModelFacts.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError, AttributeError):  # none yet, or damaged: count again
            pass
        facts = model_facts(spec)
        if facts.flops is None and spec.has_module:  # the counter failed, perhaps for want of memory
            return facts
        try:
            write_text_atomic(path, json.dumps(facts.to_dict()))
        except OSError as exc:  # a full or read-only cache costs the next run the count, not this one its rows
            log.warning("could not keep %s's facts in %s (%s)", spec.name, self.root, exc)
        return facts

    def reference(
        self,
        spec: ModelSpec,
        inputs_digest: str,
        origin: str,
        path: Path,
        build: Callable[[Path], object],
    ) -> Path:
        """The reference at ``path`` for the inputs (and dataset) whose ``arrays_digest`` is
        ``inputs_digest``, described by ``origin``: copied from the record when one was kept,
        else made by ``build(file)`` and kept. Either way ``path`` is replaced whole, never
        written in place, so a worker reading it never sees half a file."""
        kept = None
        if self.usable(spec):
            key = self._key(spec, "reference", arrays=inputs_digest, origin=origin)
            kept = self.root / f"{key}.reference.npz"
            if kept.is_file() and self._readable(kept):
                copy_file_atomic(kept, path)
                return path
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, staging = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=path.parent)
        os.close(handle)
        try:
            build(Path(staging))
            make_ordinary(Path(staging))
            if kept is not None:
                try:
                    copy_file_atomic(Path(staging), kept)
                except OSError as exc:  # as for facts: the next run builds it again
                    log.warning("could not keep %s's reference in %s (%s)", spec.name, self.root, exc)
            os.replace(staging, path)
        finally:
            Path(staging).unlink(missing_ok=True)
        return path

    @staticmethod
    def _readable(path: Path) -> bool:
        try:
            with np.load(path) as stored:
                int(stored["n_outputs"])
            return True
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            log.warning("model record %s is damaged (%s); computing it again", path.name, exc)
            return False
