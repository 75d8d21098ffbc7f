"""Peak memory of isolated workers: what the regression gate's memory rule compares."""

from __future__ import annotations

import subprocess
import sys


def test_a_workers_peak_rss_is_its_own_not_its_parents() -> None:
    """A fork+exec child must not inherit the parent's peak RSS (ru_maxrss survives execve; VmHWM does not)."""
    ballast = bytearray(400 * 2**20)
    ballast[::4096] = b"\1" * len(ballast[::4096])  # touch every page so it is resident
    code = ("from deploybench.memory import MemorySampler\n"
            "with MemorySampler() as m:\n    pass\n"
            "print(m.report().peak_rss_mb)")
    child_peak = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                      check=True).stdout)
    assert child_peak < 300, child_peak
    del ballast
