"""Start and end worker processes: forked by the zygote where torch is needed, else fresh.

Importing torch takes seconds, and a sweep starts a torch worker per model and torch-based
format. Workers of runtimes that need what ``ZYGOTE_PRELOAD`` names are therefore forked by
a zygote process that imported it once (``deploybench.zygote``); each is still a process of
its own, in a session of its own. The others start as fresh interpreters, so an ONNX Runtime
or OpenVINO worker carries no torch in its memory figures. ``deploybench.isolation`` decides
what a worker runs and reads its rows; this module owns the processes.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from deploybench import registry
from deploybench.cell import Cell

REAP_POLL_S = 0.05  # how often a worker whose zygote died is looked for in /proc


def import_path() -> list[str]:
    """This process's import path, without its empty entries."""
    return [p for p in sys.path if p]


def worker_env() -> dict[str, str]:
    """The parent's import path, so plugins registered from tests import in the worker too."""
    env = dict(os.environ)
    paths = import_path()
    env["PYTHONPATH"] = os.pathsep.join(paths + [env["PYTHONPATH"]] if env.get("PYTHONPATH") else paths)
    return env


# What the zygote imports before it forks a worker: the libraries whose import costs seconds.
# A runtime whose ``requires`` names one of them gets a forked worker.
ZYGOTE_PRELOAD = ("torch",)


class ZygoteClient:
    """The parent's handle on ``deploybench.zygote``: asks it for workers, hears them end."""

    def __init__(self, modules: tuple[str, ...]) -> None:
        # Its import warnings stay off the terminal; a zygote that fails to start is replaced
        # by fresh workers, whose log shows the failure in the row.
        self.owner = os.getpid()  # a process forked from this one inherits the handle, not the zygote
        self.process = subprocess.Popen(
            [sys.executable, "-m", "deploybench.zygote", *modules],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=worker_env(),
            text=True,
        )
        self._lock = threading.Condition()
        self._write_lock = threading.Lock()
        self.ready = False
        self.gone = False
        self._requests = itertools.count()
        self._started: dict[int, int] = {}  # request id -> worker pid
        self._abandoned: set[int] = set()  # requests whose caller stopped waiting: kill on arrival
        self._ended: dict[int, int] = {}  # pid -> exit status
        self._failed: set[int] = set()  # requests the zygote could not fork
        threading.Thread(target=self._listen, name="deploybench-zygote", daemon=True).start()

    def _listen(self) -> None:
        assert self.process.stdout is not None
        # Plain reads on the descriptor, not the file object: a thread blocked in a buffered
        # read holds its lock, and a process forked from this one (a compile worker pool of an
        # exporter) would deadlock on that lock when it closes its copy at exit.
        fd = self.process.stdout.fileno()
        pending = b""
        try:
            while data := os.read(fd, 4096):
                pending += data
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    self._hear(line.decode().split())
        finally:  # whatever ended the listening, nobody may wait for the zygote any more
            with self._lock:
                self.gone = True
                self._lock.notify_all()
            if self.process.poll() is None:  # unheard, it must not fork on: end it and its workers
                self.close()

    def _hear(self, words: list[str]) -> None:
        with self._lock:
            if words == ["ready"]:
                self.ready = True
            elif len(words) == 3 and words[0] == "started":
                request, pid = int(words[1]), int(words[2])
                self._ended.pop(pid, None)  # a PID the kernel reused
                if request in self._abandoned:
                    self._abandoned.discard(request)
                    self.kill(pid)
                else:
                    self._started[request] = pid
            elif len(words) == 3 and words[0] == "ended":
                self._ended[int(words[1])] = int(words[2])
            elif len(words) == 3 and words[0] == "failed":
                self._failed.add(int(words[1]))
            self._lock.notify_all()

    def _send(self, request: dict) -> bool:
        assert self.process.stdin is not None
        with self._write_lock:
            try:
                self.process.stdin.write(json.dumps(request) + "\n")
                self.process.stdin.flush()
                return True
            except (OSError, ValueError):  # gone, or closed by close()
                return False

    def wait_ready(self, timeout: float) -> bool:
        with self._lock:
            self._lock.wait_for(lambda: self.ready or self.gone, timeout)
            return self.ready and not self.gone

    def fork(self, args: list, timeout: float) -> ForkedWorker | None:
        """A worker for ``args``, or None when the zygote is gone or does not answer in ``timeout``."""
        request = next(self._requests)
        try:
            if not self._send({"fork": request, "args": args}):
                return None
            with self._lock:
                self._lock.wait_for(lambda: request in self._started or request in self._failed or self.gone, timeout)
                if request in self._started:
                    return ForkedWorker(self, self._started.pop(request))
                self._abandoned.add(request)
                return None
        except BaseException:  # Ctrl-C while asking: the worker it forks must not outlive us
            with self._lock:
                if request in self._started:
                    self.kill(self._started.pop(request))
                else:
                    self._abandoned.add(request)
            raise

    def status(self, pid: int, timeout: float | None = 0.0) -> int | None:
        """The worker's exit status once it ended; None while it runs (waits up to ``timeout``)."""
        with self._lock:
            self._lock.wait_for(lambda: pid in self._ended or self.gone, timeout)
            if pid in self._ended:
                return self._ended[pid]
            if not self.gone:
                return None
        # The zygote died first, and the status with it; the worker is someone else's child now.
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        while running(pid):
            if time.monotonic() >= deadline:
                return None
            time.sleep(REAP_POLL_S)
        return 1

    def kill(self, pid: int) -> None:
        """SIGKILL the worker and its session, through the zygote: it knows the PID is still its child."""
        if self._send({"kill": pid}):
            return
        for kill in (os.killpg, os.kill):  # the zygote is gone: best effort
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(pid, signal.SIGKILL)

    def close(self, kill: bool = False) -> None:
        """End the zygote: end of input, on which it kills its workers still running and exits."""
        if os.getpid() != self.owner:  # an inherited atexit handler in a forked process: not ours
            return
        if kill:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        with self._write_lock, contextlib.suppress(OSError):
            if self.process.stdin:
                self.process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, ended but not reaped, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except (OSError, IndexError):  # no /proc: ask the kernel whether the PID exists at all
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state != "Z"


class FreshWorker(subprocess.Popen):
    """A worker started as a fresh interpreter, in a session of its own."""

    def kill(self) -> None:
        """SIGKILL its session (it and anything it started), unless it was reaped: then the PID
        may already belong to another process."""
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                super().kill()


class ForkedWorker:
    """A worker forked by the zygote, with the part of ``Popen`` the parent uses."""

    def __init__(self, zygote: ZygoteClient, pid: int) -> None:
        self.zygote, self.pid = zygote, pid

    def poll(self) -> int | None:
        return self.zygote.status(self.pid)

    def wait(self, timeout: float | None = None) -> int:
        status = self.zygote.status(self.pid, timeout)
        if status is None:
            raise subprocess.TimeoutExpired("deploybench worker", timeout or 0.0)
        return status

    def kill(self) -> None:
        self.zygote.kill(self.pid)


Worker = FreshWorker | ForkedWorker
_zygotes: dict[tuple[str, ...], ZygoteClient] = {}
_broken: set[tuple[str, ...]] = set()  # preloads whose zygote died before it was ready: not retried


def forks_from_zygote(runtime: str) -> bool:
    """Whether ``runtime``'s workers fork from the zygote: it needs what the zygote preloads,
    this platform can fork, and the zygote has not failed to start."""
    try:
        requires = registry.runtimes.get(runtime).requires
    except Exception:  # an unknown runtime fails in the worker, where it becomes the row's status
        return False
    return bool(set(requires) & set(ZYGOTE_PRELOAD)) and hasattr(os, "fork") and ZYGOTE_PRELOAD not in _broken


def zygote_for(runtime: str) -> ZygoteClient | None:
    """The zygote that preloads what ``runtime`` needs, started if it is not running; None
    where ``forks_from_zygote`` says no."""
    if not forks_from_zygote(runtime):
        return None
    zygote = _zygotes.get(ZYGOTE_PRELOAD)
    if zygote is not None and zygote.gone:
        if not zygote.ready or ZYGOTE_PRELOAD in _broken:
            _broken.add(ZYGOTE_PRELOAD)
            return None
        zygote = None
    if zygote is None:
        zygote = _zygotes[ZYGOTE_PRELOAD] = ZygoteClient(ZYGOTE_PRELOAD)
        atexit.register(zygote.close)
    return zygote


def start_zygote(runtimes: Iterable[str]) -> list[ZygoteClient]:
    """Start the zygote now if any of ``runtimes`` will fork from it: it imports while the
    sweep resolves models and builds references, before any window is timed. Returns what
    this call started (not a zygote an earlier sweep left running)."""
    before = set(map(id, _zygotes.values()))
    for runtime in set(runtimes):
        if zygote_for(runtime) is not None:
            break
    return [zygote for zygote in _zygotes.values() if id(zygote) not in before]


def stop_zygotes(zygotes: Iterable[ZygoteClient]) -> None:
    """End ``zygotes`` now, one still importing too (its sweep will fork nothing, or failed to
    plan): exit does not wait for them. A later sweep in this process starts its own."""
    for zygote in list(zygotes):
        for preload, running in list(_zygotes.items()):
            if running is zygote:
                del _zygotes[preload]
        zygote.close(kill=True)


def start_worker(cells: list[Cell], cells_file: Path, out: Path, log_file: Path, timeout_s: float) -> Worker:
    """The worker process for ``cells``: forked by the zygote, or a fresh interpreter."""
    # A zygote still importing would share the cores with this worker's timed window; one that
    # does not get ready within a cell's timeout is ended and not tried again.
    for preload, starting in list(_zygotes.items()):
        if not starting.gone and not starting.wait_ready(timeout_s):
            starting.close(kill=True)
            _broken.add(preload)
    zygote = zygote_for(cells[0].runtime)
    if zygote is not None and zygote.wait_ready(timeout_s):
        worker = zygote.fork([str(cells_file), str(out), str(log_file), worker_env(), import_path()], timeout_s)
        if worker is not None:
            return worker
    with open(log_file, "a") as log:
        # A new session: a terminal Ctrl-C reaches the parent, which then ends the worker.
        return FreshWorker(
            [sys.executable, "-m", "deploybench.worker", str(cells_file), str(out)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=worker_env(),
            start_new_session=True,
        )


def kill_worker(proc: Worker) -> None:
    """SIGKILL the worker with its session, and wait for its end."""
    proc.kill()
    proc.wait()
