"""Files: atomic writes (a reader or a crash never sees half a file) and content hashes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_ordinary(path: Path) -> None:
    """Give ``path`` the permissions of a file the user made (``mkstemp`` creates 0600)."""
    os.chmod(path, 0o666 & ~_umask())


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    write_text_atomic(path, json.dumps(data, indent=2, default=str))


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` atomically (see ``write_bytes_atomic``)."""
    write_bytes_atomic(path, text.encode())


def write_bytes_atomic(path: Path, data: bytes | memoryview) -> None:
    """Write to a temporary file in the same folder, then rename it over ``path``."""
    with _replacing(path) as fh:
        fh.write(data)


def copy_file_atomic(source: Path, path: Path) -> None:
    """Copy ``source`` to ``path`` as ``write_bytes_atomic`` writes, without reading it whole."""
    with _replacing(path) as fh, open(source, "rb") as src:
        shutil.copyfileobj(src, fh, 1 << 20)


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[BinaryIO]:
    """A temporary file beside ``path`` to write; on success it is flushed to disk and renamed over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        make_ordinary(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def module_hash(module: Any) -> str:
    """Hash of a module's architecture (its repr) and every parameter and buffer."""
    digest = hashlib.sha256(repr(module).encode())
    for key, tensor in module.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
