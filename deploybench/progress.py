"""Progress of a sweep on stderr: cells done of the total, the current cell and its phase,
elapsed time, and an ETA learnt from the cells already done.

On a terminal a tqdm bar is redrawn in place and notes are printed above it; in a CI log
(stderr is not a terminal) or with ``--quiet`` each event is a plain line. Both go to
stderr, so ``--json -`` and the table on stdout stay clean.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO


def clock_text(seconds: float) -> str:
    """``75.2`` -> ``1:15``; an hour or more -> ``1:02:03``."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Counts cells and estimates what is left from the mean time of the cells finished so far.

    ``add`` grows the total as each model is planned; ``begin`` and ``finish`` bracket one cell;
    ``phase`` names what the current cell is doing; ``note`` prints a line.
    """

    def __init__(
        self, stream: TextIO | None = None, live: bool | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.clock = clock
        self.started = clock()
        self.total = self.done = 0
        self.cell = self.current_phase = ""
        self._measured = 0  # finished cells that were measured (an export that failed was not)
        self._bar: Any = None

    # -- what the sweep tells it ------------------------------------------------------------------
    def add(self, cells: int) -> None:
        self.total += cells
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.refresh()

    def begin(self, cell: str) -> None:
        self.cell, self.current_phase = cell, ""
        self._show(f"{cell}: measuring ...")

    def phase(self, name: str) -> None:
        if name == self.current_phase:
            return
        self.current_phase = name
        self._show(f"{self.cell}: {name}", plain=name == "export")

    def finish(self, summary: str, measured: bool = True) -> None:
        """One cell ended; ``measured`` False (an export that failed) does not count towards the ETA's rate."""
        self._measured += measured
        self.done += 1
        if self._bar is not None:
            self._bar.update(1)
        self._show(f"{self.cell}: {summary}", force_line=True)
        self.cell = self.current_phase = ""

    def note(self, message: str) -> None:
        self._line(f"  {message}")

    # -- figures ------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.clock() - self.started

    def eta(self) -> float | None:
        """Seconds left: the sweep's time so far per measured cell, times the cells not finished.

        Whole elapsed time, not the cells' own clocks: exports, worker start-up and references
        are part of what the remaining cells will cost too. None before a cell was measured.
        """
        if not self._measured:
            return None
        return max(self.total - self.done, 0) * self.elapsed() / self._measured

    def status(self) -> str:
        """``[3/24 0:42, ETA 2:10]``."""
        eta = self.eta()
        return (
            f"[{self.done}/{self.total} {clock_text(self.elapsed())}, "
            f"ETA {clock_text(eta) if eta is not None else '?'}]"
        )

    # -- rendering -------------------------------------------------------------------------------
    def _show(self, text: str, plain: bool = True, force_line: bool = False) -> None:
        if not self.live:
            if plain or force_line:
                self._line(f"  {self.status()} {text}")
            return
        bar = self._live_bar()
        if force_line:
            self._line(f"  {text}")
        bar.set_description_str(self.cell or "idle", refresh=False)
        eta = self.eta()
        bar.set_postfix_str(f"{self.current_phase or '-'}; ETA {clock_text(eta) if eta is not None else '?'}")

    def _live_bar(self) -> Any:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.total,
                file=self.stream,
                dynamic_ncols=True,
                leave=False,
                bar_format="{n_fmt}/{total_fmt} cells |{bar:20}| {elapsed} {desc}: {postfix}",
            )
        return self._bar

    def _line(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
