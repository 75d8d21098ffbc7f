"""A process that imported the slow libraries once and forks workers from itself.

``python -m deploybench.zygote MODULE...`` imports the modules (it never runs an operator,
so no thread pool exists to be forked), then reads one request per line on stdin, a JSON
list ``[cells_file, out_dir, log_file, environ, path]``. For each it forks a worker and
answers ``started <pid>``; when a worker ends, ``ended <pid> <status>`` follows, the status
as ``subprocess`` gives it (negative: the signal that ended it). End of stdin ends it.

The worker makes a session of its own (a terminal's Ctrl-C reaches only the parent, and a
kill of the group takes anything it started), writes its output to the log, takes the
environment and import path of the request and runs ``deploybench.worker``. Nothing of the
parent's ``__main__`` runs in it, unlike ``multiprocessing``'s forkserver.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import sys
import traceback
from typing import TextIO

from deploybench import worker


def _run_worker(request: list, protocol: TextIO, wake: tuple[int, int]) -> int:
    """In the forked child: become the worker of ``request``; returns its exit code."""
    cells_file, out_dir, log_file, environ, path = request
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    os.setsid()
    protocol.close()  # the parent reads the zygote's end of file; no worker may hold it open
    for fd in wake:
        os.close(fd)
    devnull = os.open(os.devnull, os.O_RDONLY)  # the requests stay the zygote's: stdin as Popen's DEVNULL
    os.dup2(devnull, 0)
    os.close(devnull)
    log = os.open(log_file, os.O_WRONLY | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.environ.clear()
    os.environ.update(environ)
    sys.path[:] = path
    return worker.main([cells_file, out_dir])


def _status(wait_status: int) -> int:
    return -os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else os.WEXITSTATUS(wait_status)


def serve(modules: list[str]) -> None:
    for name in modules:
        importlib.import_module(name)
    # The protocol gets its own descriptor; fd 1 goes to stderr, so a library's print cannot corrupt it.
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes select through the pipe
    pending = b""
    while True:
        ready, _, _ = select.select([0, wake_read], [], [])
        if wake_read in ready:
            os.read(wake_read, 512)
            while True:
                try:
                    pid, wait_status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                protocol.write(f"ended {pid} {_status(wait_status)}\n")
        if 0 in ready:
            data = os.read(0, 1 << 16)
            if not data:
                return
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                _fork(json.loads(line), protocol, (wake_read, wake_write))


def _fork(request: list, protocol: TextIO, wake: tuple[int, int]) -> None:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = _run_worker(request, protocol, wake)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            worker.exit_now(code)
    protocol.write(f"started {pid}\n")


if __name__ == "__main__":
    serve(sys.argv[1:])
