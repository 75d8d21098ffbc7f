"""A process that imported the slow libraries once and forks workers from itself.

``python -m deploybench.zygote MODULE...`` imports the modules (it runs no operator; the only
threads are OpenBLAS's, which it stops across ``fork`` itself), answers ``ready``, then reads
one JSON request per line on stdin:

- ``{"fork": ID, "args": [cells_file, out_dir, log_file, environ, path]}``: fork a worker and
  answer ``started ID PID`` (``failed ID ERRNO`` when ``fork`` fails); when it ends,
  ``ended PID STATUS`` follows, the status as ``subprocess`` gives it (negative: the signal
  that ended it);
- ``{"kill": PID}``: SIGKILL that worker and its session, if it is still this process's
  child (the zygote reaps its workers, so only it knows a PID was not reused).

End of stdin ends it, and kills the workers still running: whatever way the parent ends, its
workers end with it. The worker makes a session of its own (a terminal's Ctrl-C reaches
only the parent, and a kill of the group takes anything it started), writes its output to
the log, takes the environment and import path of the request and runs
``deploybench.worker``. Nothing of the parent's ``__main__`` runs in it, unlike
``multiprocessing``'s forkserver.

A forked worker shares the zygote's pages, and the kernel does not copy the page tables of
file mappings at ``fork``: without help, the libraries' code that the import read would not
count in the worker's RSS, and a torch row would report a few hundred MB less than a
process that imported torch itself. The zygote notes which of its file pages are resident
after the imports, and each worker reads one byte of each, so its memory figures start
where a fresh interpreter's would.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import select
import signal
import sys
import traceback
from typing import TextIO

import numpy as np

from deploybench import worker

PAGE = os.sysconf("SC_PAGE_SIZE")
PRESENT = np.uint64(1 << 63)  # /proc/self/pagemap: the page is in memory (readable without privileges)


def resident_file_pages() -> list[tuple[int, int]]:
    """(address, length) of the runs of this process's resident pages of readable file mappings."""
    runs: list[tuple[int, int]] = []
    try:
        with open("/proc/self/maps") as maps, open("/proc/self/pagemap", "rb") as pagemap:
            for line in maps.read().splitlines():  # read whole: the scan's own allocations map memory
                fields = line.split(maxsplit=5)
                if len(fields) < 6 or not fields[1].startswith("r"):
                    continue
                path = fields[5].strip()
                if not path.startswith("/") or path.startswith(("/dev/", "/proc/", "/sys/")):
                    continue  # anonymous memory is copied at fork; devices are not files
                start, end = (int(x, 16) for x in fields[0].split("-"))
                pagemap.seek(start // PAGE * 8)
                entries = np.frombuffer(pagemap.read((end - start) // PAGE * 8), dtype=np.uint64)
                present = np.concatenate(([False], (entries & PRESENT) != 0, [False]))
                edges = np.flatnonzero(present[1:] != present[:-1])
                runs += [(start + int(a) * PAGE, int(b - a) * PAGE) for a, b in zip(edges[::2], edges[1::2])]
    except OSError:  # no /proc (not Linux): nothing to restore
        return []
    return runs


def touch(runs: list[tuple[int, int]]) -> None:
    """Read one byte of every page in ``runs``: the page is mapped in this process again."""
    for address, length in runs:
        pages = np.frombuffer(memoryview((ctypes.c_ubyte * length).from_address(address)), dtype=np.uint8)
        int(pages[::PAGE].max())


def _run_worker(args: list, protocol: TextIO, wake: tuple[int, int], resident: list[tuple[int, int]]) -> int:
    """In the forked child: become the worker of ``args``; returns its exit code."""
    cells_file, out_dir, log_file, environ, path = args
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a fresh interpreter
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
    importlib.invalidate_caches()
    touch(resident)
    return worker.main([cells_file, out_dir])


def _status(wait_status: int) -> int:
    return -os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else os.WEXITSTATUS(wait_status)


def _exit_code(exc: SystemExit) -> int:
    """What the interpreter would exit with for ``exc``."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


class Zygote:
    """The serving loop: requests on stdin, answers on ``protocol``, its workers reaped as they end."""

    def __init__(self, protocol: TextIO) -> None:
        self.protocol = protocol
        self.children: set[int] = set()
        self.wake = os.pipe()
        os.set_blocking(self.wake[1], False)
        self.resident = resident_file_pages()

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wake[1])
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes select through the pipe
        self.protocol.write("ready\n")
        pending = b""
        while True:
            ready, _, _ = select.select([0, self.wake[0]], [], [])
            if self.wake[0] in ready:
                os.read(self.wake[0], 512)
                self.reap()
            if 0 in ready:
                data = os.read(0, 1 << 16)
                if not data:  # the parent is gone or done: no worker of its may outlive it
                    for pid in self.children:
                        self.kill(pid)
                    return
                pending += data
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    self.handle(json.loads(line))

    def reap(self) -> None:
        while self.children:
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            self.children.discard(pid)
            self.protocol.write(f"ended {pid} {_status(wait_status)}\n")

    def kill(self, pid: int) -> None:
        """SIGKILL a worker and its session, if it is still a child (not reaped, so the PID is its)."""
        if pid in self.children:
            for kill in (os.killpg, os.kill):  # killpg fails before the worker's setsid
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    kill(pid, signal.SIGKILL)

    def handle(self, request: dict) -> None:
        if "kill" in request:
            self.kill(int(request["kill"]))
            return
        try:
            pid = os.fork()
        except OSError as exc:  # out of processes or memory: the parent starts a fresh worker
            self.protocol.write(f"failed {request['fork']} {exc.errno}\n")
            return
        if pid == 0:
            code = 1
            try:
                code = _run_worker(request["args"], self.protocol, self.wake, self.resident)
            except SystemExit as exc:
                code = _exit_code(exc)
            except BaseException:
                traceback.print_exc()
            finally:
                worker.exit_now(code)
        self.children.add(pid)
        self.protocol.write(f"started {request['fork']} {pid}\n")


def main(modules: list[str]) -> None:
    # The protocol gets its own descriptor before the preloaded modules are imported (numpy
    # and deploybench's worker, imported above, print nothing); fd 1 goes to stderr, so what
    # a library prints cannot corrupt it.
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    for name in modules:
        importlib.import_module(name)
    sys.stdout.flush()
    Zygote(protocol).serve()


if __name__ == "__main__":
    main(sys.argv[1:])
