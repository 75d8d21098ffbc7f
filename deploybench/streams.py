"""stdout is the table's: library output during the work goes to stderr instead."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout while the block runs to stderr, at both levels.

    Python level (``sys.stdout``) catches ``print`` and NNCF's progress bars; file-descriptor
    level catches what holds its own handle on stdout: Ultralytics' LOGGER (a handler bound
    to the stdout object at import), C++ libraries (OpenVINO, TensorRT, torch's inductor).
    ``deploybench compare > table.txt`` then holds the table and nothing else.
    """
    originals = [stream for stream in (sys.stdout, sys.__stdout__) if stream is not None]
    for stream in originals:
        stream.flush()
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no file descriptors to move (an embedding host); the Python level still holds
        saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        for stream in originals:  # written while redirected: must reach stderr before fd 1 comes back
            with contextlib.suppress(ValueError, OSError, io.UnsupportedOperation):
                stream.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)
