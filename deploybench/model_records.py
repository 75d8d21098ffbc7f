"""What a sweep computes from a model that the next run would compute again: its facts
(parameters, FLOPs) and its parity reference on given inputs, kept in the artifact cache.

Both need the PyTorch module built and run in the sweep's own process (a yolov8n build,
FLOP count and eight reference images take about 3 s on 2 cores), although nothing in them
changes while the model's identity, the inputs and the libraries stay the same. A record is
keyed by all of those, written atomically, and used only for models whose identity pins
their outputs (``ModelSpec.pinned``: a released library's version, an ONNX file's hash). A
model from the user's own code or a ``.pt`` file, or with ``--checkpoint`` (whose load
report needs the module built), is computed every run, as before.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

import deploybench
from deploybench.files import write_text_atomic
from deploybench.model_facts import ModelFacts, model_facts
from deploybench.models import ModelSpec

log = logging.getLogger(__name__)

# Bump when what a record holds, or how it is computed, changes.
RECORD_VERSION = 1
# The libraries whose kernels compute a reference or whose counter counts FLOPs.
COMPUTING_LIBRARIES = ("torch", "onnxruntime", "numpy")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
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
            "deploybench": deploybench.__version__,
            "model": spec.identity(),
            "libraries": {name: _version(name) for name in COMPUTING_LIBRARIES},
            # The CPU's kernels differ in their last bits (AVX2, AVX-512): a cache folder shared
            # between machines keeps one reference per kind of machine.
            "machine": [platform.machine(), platform.processor()],
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
        try:
            write_text_atomic(path, json.dumps(facts.to_dict()))
        except OSError as exc:  # a full or read-only cache costs the next run the count, not this one its rows
            log.warning("could not keep %s's facts in %s (%s)", spec.name, self.root, exc)
        return facts

    def reference(
        self,
        spec: ModelSpec,
        arrays: Mapping[str, np.ndarray],
        origin: str,
        path: Path,
        build: Callable[[Path], Path],
    ) -> Path:
        """The reference for inputs and dataset ``arrays`` (described by ``origin``) at ``path``:
        copied from the record when one was kept, else made by ``build(path)`` and kept."""
        if not self.usable(spec):
            return build(path)
        key = self._key(spec, "reference", arrays=_arrays_digest(arrays), origin=origin)
        kept = self.root / f"{key}.reference.npz"
        if kept.is_file() and self._readable(kept):
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.resolve() != kept.resolve():
                shutil.copyfile(kept, path)
            return path
        build(path)
        try:
            self._keep(path, kept)
        except OSError as exc:  # as for facts: the next run builds it again
            log.warning("could not keep %s's reference in %s (%s)", spec.name, self.root, exc)
        return path

    def _keep(self, path: Path, kept: Path) -> None:
        """Copy ``path`` to ``kept`` through a temporary file: a reader sees the whole record or none."""
        self.root.mkdir(parents=True, exist_ok=True)
        handle, staging = tempfile.mkstemp(prefix=f".{kept.name}.", dir=self.root)
        os.close(handle)
        try:
            shutil.copyfile(path, staging)
            os.replace(staging, kept)
        finally:
            Path(staging).unlink(missing_ok=True)

    @staticmethod
    def _readable(path: Path) -> bool:
        try:
            with np.load(path) as stored:
                int(stored["n_outputs"])
            return True
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            log.warning("model record %s is damaged (%s); computing it again", path.name, exc)
            return False
