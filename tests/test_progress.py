"""The progress display: counts, phases and an ETA learnt from finished cells, live on a
terminal (checked under a pseudo-terminal) and as plain lines in a log."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import struct
import termios

from deploybench.progress import Progress, clock_text


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_count_cells_and_learn_the_eta() -> None:
    clock, stream = FakeClock(), io.StringIO()
    progress = Progress(stream=stream, live=False, clock=clock)
    progress.add(3)
    assert progress.eta() is None  # nothing finished yet: no guess
    progress.begin("m onnxruntime/onnx fp32 b1")
    progress.phase("export")
    progress.phase("timed")  # phases of a worker are not logged line by line in plain mode
    clock.now = 10.0
    progress.finish("1.0 ms/img")
    progress.begin("m onnxruntime/onnx fp32 b8")
    clock.now = 30.0
    progress.finish("0.5 ms/img")
    assert progress.eta() == 15.0  # mean 15 s per finished cell, one cell left
    lines = stream.getvalue().splitlines()
    assert lines[0] == "  [0/3 0:00, ETA ?] m onnxruntime/onnx fp32 b1: measuring ..."
    assert lines[1] == "  [0/3 0:00, ETA ?] m onnxruntime/onnx fp32 b1: export"
    assert lines[2] == "  [1/3 0:10, ETA 0:20] m onnxruntime/onnx fp32 b1: 1.0 ms/img"
    assert lines[-1] == "  [2/3 0:30, ETA 0:15] m onnxruntime/onnx fp32 b8: 0.5 ms/img"
    assert not any("timed" in line for line in lines)


def test_a_failed_export_does_not_teach_the_eta() -> None:
    clock = FakeClock()
    progress = Progress(stream=io.StringIO(), live=False, clock=clock)
    progress.add(2)
    progress.begin("a")
    clock.now = 100.0
    progress.finish("export-failed", measured=False)
    assert progress.eta() is None


def test_live_display_under_a_pseudo_terminal() -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))  # a 160-column terminal
    with os.fdopen(slave, "w") as terminal:
        progress = Progress(stream=terminal)
        assert progress.live  # decided by isatty, not by a flag
        progress.add(2)
        progress.begin("m openvino/openvino fp32 b1")
        progress.phase("warm-up")
        progress.note("m: random initialisation")
        progress.finish("2.0 ms/img")
        progress.close()
        terminal.flush()
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    text = shown.decode(errors="replace")
    assert "cells |" in text and "\r" in text  # a bar redrawn in place
    assert "m openvino/openvino fp32 b1" in text and "warm-up" in text
    assert "m: random initialisation" in text and "2.0 ms/img" in text


def test_clock_text() -> None:
    assert [clock_text(s) for s in (0, 75.2, 3723)] == ["0:00", "1:15", "1:02:03"]
