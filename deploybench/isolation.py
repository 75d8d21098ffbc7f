"""Run cells in worker processes, with a timeout; crashes and hangs become row statuses.

One worker measures one artifact at each of its batch sizes: the runtime, the model code and
the artifact's imports are paid once, and parity is checked once. A crash, hang or
out-of-memory kill costs only the cell it happened in: the worker's finished rows are kept,
and the cells after it run in a fresh worker. ``--isolate cell`` gives every cell its own.

Importing torch takes seconds, and a sweep starts a torch worker per model and torch-based
format. Workers of runtimes that need what ``ZYGOTE_PRELOAD`` names are therefore forked by
a zygote process that imported it once (``deploybench.zygote``); each is still a process of
its own, in a session of its own. The others start as fresh interpreters, so an ONNX Runtime
or OpenVINO worker carries no torch in its memory figures.
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
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from deploybench import registry
from deploybench.cell import Cell, run_cells
from deploybench.results import Row, Status
from deploybench.worker import read_phase, row_file

DEFAULT_TIMEOUT_S = 600.0
POLL_S = 0.05  # how often the parent looks for finished rows and the worker's phase
EXIT_GRACE_S = 30.0  # a worker that wrote every row gets this long to exit before it is killed

OnPhase = Callable[[Cell, str], None]
OnRow = Callable[[Row], None]


def _import_path() -> list[str]:
    return [p for p in sys.path if p]


def _worker_env() -> dict[str, str]:
    """The parent's import path, so plugins registered from tests import in the worker too."""
    env = dict(os.environ)
    paths = _import_path()
    env["PYTHONPATH"] = os.pathsep.join(paths + [env["PYTHONPATH"]] if env.get("PYTHONPATH") else paths)
    return env


# What the zygote imports before it forks a worker: the libraries whose import costs seconds.
# A runtime whose ``requires`` names one of them gets a forked worker.
ZYGOTE_PRELOAD = ("torch",)


class _Zygote:
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
            env=_worker_env(),
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

    def fork(self, args: list, timeout: float) -> _ForkedWorker | None:
        """A worker for ``args``, or None when the zygote is gone or does not answer in ``timeout``."""
        request = next(self._requests)
        try:
            if not self._send({"fork": request, "args": args}):
                return None
            with self._lock:
                self._lock.wait_for(lambda: request in self._started or request in self._failed or self.gone, timeout)
                if request in self._started:
                    return _ForkedWorker(self, self._started.pop(request))
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
        while _running(pid):
            if time.monotonic() >= deadline:
                return None
            time.sleep(POLL_S)
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


def _running(pid: int) -> bool:
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


class _FreshWorker(subprocess.Popen):
    """A worker started as a fresh interpreter, in a session of its own."""

    def kill(self) -> None:
        """SIGKILL its session (it and anything it started), unless it was reaped: then the PID
        may already belong to another process."""
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                super().kill()


class _ForkedWorker:
    """A worker forked by the zygote, with the part of ``Popen`` the parent uses."""

    def __init__(self, zygote: _Zygote, pid: int) -> None:
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


Worker = _FreshWorker | _ForkedWorker
_zygotes: dict[tuple[str, ...], _Zygote] = {}
_broken: set[tuple[str, ...]] = set()  # preloads whose zygote died before it was ready: not retried


def _zygote_for(runtime: str) -> _Zygote | None:
    """The zygote that preloads what ``runtime`` needs, started if it is not running; None
    where nothing it needs is preloaded (or this platform cannot fork, or it failed to start)."""
    try:
        requires = registry.runtimes.get(runtime).requires
    except Exception:  # an unknown runtime fails in the worker, where it becomes the row's status
        return None
    if not set(requires) & set(ZYGOTE_PRELOAD) or not hasattr(os, "fork") or ZYGOTE_PRELOAD in _broken:
        return None
    zygote = _zygotes.get(ZYGOTE_PRELOAD)
    if zygote is not None and zygote.gone:
        if not zygote.ready or ZYGOTE_PRELOAD in _broken:
            _broken.add(ZYGOTE_PRELOAD)
            return None
        zygote = None
    if zygote is None:
        zygote = _zygotes[ZYGOTE_PRELOAD] = _Zygote(ZYGOTE_PRELOAD)
        atexit.register(zygote.close)
    return zygote


def start_zygote(runtimes: Iterable[str]) -> None:
    """Start the zygote now if any of ``runtimes`` will fork from it: it imports while the
    sweep builds references and exports, before any window is timed."""
    for runtime in set(runtimes):
        if _zygote_for(runtime) is not None:
            return


def _start(cells: list[Cell], cells_file: Path, out: Path, log_file: Path, timeout_s: float) -> Worker:
    """The worker process for ``cells``: forked by the zygote, or a fresh interpreter."""
    # A zygote still importing would share the cores with this worker's timed window; one that
    # does not get ready within a cell's timeout is ended and not tried again.
    for preload, starting in list(_zygotes.items()):
        if not starting.gone and not starting.wait_ready(timeout_s):
            starting.close(kill=True)
            _broken.add(preload)
    zygote = _zygote_for(cells[0].runtime)
    if zygote is not None and zygote.wait_ready(timeout_s):
        worker = zygote.fork([str(cells_file), str(out), str(log_file), _worker_env(), _import_path()], timeout_s)
        if worker is not None:
            return worker
    with open(log_file, "a") as log:
        # A new session: a terminal Ctrl-C reaches the parent, which then ends the worker.
        return _FreshWorker(
            [sys.executable, "-m", "deploybench.worker", str(cells_file), str(out)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_worker_env(),
            start_new_session=True,
        )


def _tail(path: Path, lines: int = 1) -> str:
    try:
        text = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def _one_worker(cells: list[Cell], timeout_s: float, on_phase: OnPhase, on_row: OnRow) -> int:
    """Run ``cells`` in one worker until it ends; returns how many rows it finished.

    Every cell has ``timeout_s`` from when the one before it finished. When the worker dies or
    hangs, the cell it was on gets the status (``crashed`` or ``timeout``) and is counted too.
    """
    with tempfile.TemporaryDirectory(prefix="deploybench-cell-") as tmp:
        out = Path(tmp)
        cells_file, log_file = out / "cells.json", out / "worker.log"
        cells_file.write_text(json.dumps([cell.to_dict() for cell in cells]))
        finished, seen_phase = 0, None
        log_file.touch()
        proc = _start(cells, cells_file, out, log_file, timeout_s)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                returncode = proc.poll()
                while finished < len(cells) and row_file(out, finished).is_file():
                    on_row(Row.from_dict(json.loads(row_file(out, finished).read_text())))
                    finished += 1
                    deadline = time.monotonic() + timeout_s
                if returncode is not None or finished == len(cells):
                    break
                phase = read_phase(out)
                if phase is not None and phase != seen_phase and phase[0] == finished:
                    seen_phase = phase
                    on_phase(cells[finished], phase[1])
                if time.monotonic() > deadline:
                    _kill(proc)
                    if row_file(out, finished).is_file():  # written just before the kill: keep it
                        on_row(Row.from_dict(json.loads(row_file(out, finished).read_text())))
                    else:
                        on_row(
                            _failed(
                                cells[finished],
                                Status.TIMEOUT,
                                f"no result within {timeout_s:.0f} s; raise --timeout or check the runtime",
                            )
                        )
                    return finished + 1
                time.sleep(POLL_S)
            proc.wait(timeout=EXIT_GRACE_S)  # every row is in; a worker stuck in its teardown is ended
        except subprocess.TimeoutExpired:
            _kill(proc)
        except BaseException:  # KeyboardInterrupt, SystemExit: take the worker down with us
            _kill(proc)
            raise
        if finished == len(cells):
            return finished
        if returncode is not None and returncode < 0:
            name = signal.Signals(-returncode).name
            why = " (the kernel's out-of-memory killer sends this)" if returncode == -signal.SIGKILL else ""
            message = f"worker died with {name}{why}; last output: {_tail(log_file)}"
        else:
            message = f"worker exited with code {returncode}; last output: {_tail(log_file, 2)}"
        on_row(_failed(cells[finished], Status.CRASHED, message))
        return finished + 1


def run_isolated(
    cells: list[Cell],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_phase: OnPhase = lambda cell, phase: None,
    on_row: OnRow = lambda row: None,
) -> list[Row]:
    """Run ``cells`` in worker processes, a fresh one after any crash or hang; rows in cell order."""
    rows: list[Row] = []

    def keep(row: Row) -> None:
        rows.append(row)
        on_row(row)

    start = 0
    while start < len(cells):
        start += _one_worker(cells[start:], timeout_s, on_phase, keep)
    return rows


def _kill(proc: Worker) -> None:
    """SIGKILL the worker with its session, and wait for its end."""
    proc.kill()
    proc.wait()


def _failed(cell: Cell, status: Status, message: str) -> Row:
    row = cell.empty_row()
    row.status, row.message = status, message
    return row


def run_group(
    cells: list[Cell],
    isolate: bool = True,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_phase: OnPhase = lambda cell, phase: None,
    on_row: OnRow = lambda row: None,
) -> list[Row]:
    """Measure one artifact's cells: in a worker process, or in this one (``--no-isolate``)."""
    if isolate:
        return run_isolated(cells, timeout_s, on_phase, on_row)
    return run_cells(
        cells, on_phase=lambda index, phase: on_phase(cells[index], phase), on_row=lambda index, row: on_row(row)
    )


def run(cell: Cell, isolate: bool = True, timeout_s: float = DEFAULT_TIMEOUT_S) -> Row:
    """One cell on its own process (triage's before and after rows)."""
    return run_isolated([cell], timeout_s)[0] if isolate else run_cells([cell])[0]
