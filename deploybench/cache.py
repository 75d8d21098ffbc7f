"""A content-addressed artifact cache.

Keyed by everything that changes an artifact (model identity, format, options, library
versions). Exports are written to a temporary folder and renamed into place under a
per-key file lock, so an interrupted export never leaves a half artifact, two processes
never build into the same folder, and a corrupted entry is detected and rebuilt.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from deploybench.artifact import MANIFEST, Artifact
from deploybench.errors import CacheError

if TYPE_CHECKING:
    from deploybench.exporters.base import Exporter, ExportOptions
    from deploybench.models import ModelSpec

log = logging.getLogger(__name__)
CACHE_ENV = "DEPLOYBENCH_CACHE"


def default_cache_dir() -> Path:
    """``$DEPLOYBENCH_CACHE``, else ``$XDG_CACHE_HOME/deploybench``, else ``~/.cache/deploybench``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "deploybench"


class ArtifactCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root).expanduser() if root else default_cache_dir()

    def ensure_writable(self) -> None:
        """Create the cache folder, or say which folder to use instead."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / ".locks").mkdir(exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-"):
                pass
        except OSError as exc:
            raise CacheError(
                f"cache folder {self.root} is not writable ({exc.strerror}); pass --cache DIR or set {CACHE_ENV}"
            ) from exc

    def key(self, exporter: Exporter, model: ModelSpec, options: ExportOptions) -> str:
        material = {"model": model.identity(), "exporter": exporter.cache_identity(options)}
        return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:20]

    def folder(self, exporter: Exporter, model: ModelSpec, options: ExportOptions) -> Path:
        safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in model.name)
        return (
            self.root
            / f"{safe_name}-{exporter.name}-{options.precision}-{options.device}-{self.key(exporter, model, options)}"
        )

    @contextlib.contextmanager
    def _lock(self, folder: Path) -> Iterator[None]:
        with open(self.root / ".locks" / f"{folder.name}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def lookup(self, folder: Path) -> Artifact | None:
        """A trusted artifact at ``folder``, or None (a damaged entry is removed)."""
        if not (folder / MANIFEST).is_file():
            return None
        try:
            artifact = Artifact.load(folder)
            problem = artifact.integrity_problem()
        except (CacheError, KeyError, TypeError) as exc:
            problem = f"unreadable manifest ({exc})"
        if problem is None:
            return artifact
        log.warning("cached artifact %s is damaged (%s); rebuilding it", folder.name, problem)
        shutil.rmtree(folder, ignore_errors=True)
        return None

    def get_or_export(
        self, exporter: Exporter, model: ModelSpec, options: ExportOptions, force: bool = False
    ) -> tuple[Artifact, bool]:
        """The cached artifact (hit=True) or a fresh export moved into the cache (hit=False)."""
        self.ensure_writable()
        options = exporter.bind_cache(options, self.root)
        folder = self.folder(exporter, model, options)
        with self._lock(folder):
            if not force and (artifact := self.lookup(folder)) is not None:
                artifact.model = model
                return artifact, True
            # Holding this key's lock, any staging folder of the same key belongs to an export
            # that was killed (its owner would hold the lock): it is stale, so it goes.
            for stale in self.root.glob(f".tmp-{folder.name}-*"):
                shutil.rmtree(stale, ignore_errors=True)
            try:
                staging = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=self.root))
                try:
                    artifact = exporter.export(model, options, staging)
                    if folder.exists():
                        shutil.rmtree(folder)
                    os.rename(staging, folder)
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
            except OSError as exc:  # disk full, quota, permissions: this entry fails, the sweep goes on
                raise CacheError(
                    f"could not write {folder.name} into the cache {self.root} ({exc.strerror or exc}); "
                    f"free some space or pass --cache DIR"
                ) from exc
            artifact.path = folder
            return artifact, False

    def entries(self) -> list[Artifact]:
        if not self.root.is_dir():
            return []
        found = []
        for manifest in sorted(self.root.glob(f"*/{MANIFEST}")):
            with contextlib.suppress(CacheError, KeyError, TypeError):
                found.append(Artifact.load(manifest.parent))
        return found

    def clear(self) -> int:
        """Remove every entry (and stale temporary folders); returns how many entries went."""
        if not self.root.is_dir():
            return 0
        count = 0
        for child in self.root.iterdir():
            if child.is_dir() and child.name != ".locks":
                count += (child / MANIFEST).is_file()  # references and model records go too, uncounted
                shutil.rmtree(child, ignore_errors=True)
        return count

    @property
    def records_dir(self) -> Path:
        """Where model facts and parity references of earlier runs are kept (``model_records``)."""
        return self.root / "model-records"
