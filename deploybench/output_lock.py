"""One deploybench run per output folder.

Two runs writing one ``--out`` would each rewrite ``results.json`` with only their own rows,
and the last to finish would silently drop the other's. A run therefore holds an exclusive,
non-blocking ``flock`` on a lock file inside the folder for as long as it writes there; a
second run is refused at once, with one line. The kernel releases the lock when its owner
dies, so a killed run never leaves the folder locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from deploybench.errors import UsageError

LOCK_NAME = ".deploybench.lock"


class OutputBusyError(UsageError):
    """Another deploybench run holds the output folder."""


@contextlib.contextmanager
def exclusive_output(folder: Path, option: str = "--out") -> Iterator[Path]:
    """Create ``folder`` if needed and hold it for this process; refuse if another run holds it."""
    path = Path(folder) / LOCK_NAME
    handle = _locked(path, option)
    try:
        yield Path(folder)
    finally:
        # Unlink before unlocking: a run that opened the old file then finds it gone and retries.
        with contextlib.suppress(OSError):
            path.unlink()
        handle.close()  # closing releases the lock


def _locked(path: Path, option: str) -> IO[str]:
    folder = path.parent
    for _ in range(3):  # a retry only when the holder removed the file between our open and our lock
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a+")  # noqa: SIM115 (held open: the lock lives as long as the run)
        except OSError as exc:
            raise UsageError(f"output folder {folder} is not writable ({exc.strerror}); pass another {option}") from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip()
            handle.close()
            raise OutputBusyError(
                f"another deploybench run{f' (pid {owner})' if owner else ''} is writing to "
                f"{folder}; pass another {option} or wait for it to finish"
            ) from None
        if _same_file(handle, path):
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            return handle
        handle.close()
    raise OutputBusyError(f"the output folder {folder} keeps changing hands; pass another {option}")


def _same_file(handle: IO[str], path: Path) -> bool:
    """Whether the locked file is still the one at ``path`` (its holder may have removed it meanwhile)."""
    try:
        return os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False
