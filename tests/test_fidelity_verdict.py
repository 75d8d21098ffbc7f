"""The fidelity benchmark's arithmetic: the interval beside each ratio, and the lines under its table."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import fidelity
from bare_ort import Timing


def comparison(ratios: list[float], label: str = "onnxruntime vs bare session.run loop", control: bool = False):
    """A row whose within-round latency ratios are ``ratios`` (throughput the inverse)."""
    reference = [Timing(10.0, 100.0) for _ in ratios]
    ours = [Timing(10.0 * r, 100.0 / r) for r in ratios]
    return fidelity.Comparison("m", 1, label, reference, ours, [t.median_ms for t in ours], control)


def test_the_interval_is_the_order_statistics_that_bound_the_median() -> None:
    values = [float(v) for v in range(21)]  # shuffled order must not matter
    assert fidelity.order_statistic_interval(values[::-1]) == (5.0, 15.0)  # ranks 6 and 16: P(X <= 5) = 1.3 %
    assert fidelity.order_statistic_interval(values[:6]) == (0.0, 5.0)  # the fewest with an interval: 2/64 out
    assert fidelity.order_statistic_interval(values[:5]) is None
    narrower = fidelity.order_statistic_interval(values, confidence=0.5)  # a lower confidence, a narrower one
    assert narrower is not None and narrower[0] > 5.0


def test_the_verdict_places_each_ratio_by_its_interval() -> None:
    steady = comparison([1.0 + 0.001 * i for i in range(-10, 11)])
    noisy = comparison([0.7 + 0.03 * i for i in range(21)])  # median 1.0, rounds from 0.7 to 1.3
    text = fidelity.verdict([steady, noisy])
    assert text.startswith("**4 of 4 ratios within 0.97-1.03**.")
    assert "lies inside the bar for 2, wholly outside it for 0, across an edge of it for 2" in text
    assert "m batch 1 onnxruntime ms/img 0.8500-1.1500" in text


def test_control_rows_are_counted_apart_from_deploybench() -> None:
    ours = comparison([1.0] * 21)
    control = comparison([1.1] * 21, label=f"{fidelity.CONTROL_LABEL} vs bare session.run loop", control=True)
    first, second, third, fourth = fidelity.verdict([ours, control]).split("\n\n")
    assert first == "**2 of 2 ratios within 0.97-1.03**."
    assert third.startswith("**0 of 2 control ratios (the bare loop against itself) within 0.97-1.03**; outside:")
    assert "wholly outside it for 2" in fourth


def test_too_few_rounds_are_named_not_placed() -> None:
    assert "not placed for 2 (too few rounds for an interval)" in fidelity.verdict([comparison([1.0, 1.0])])


def test_a_kept_run_loads_back_as_it_was(tmp_path: Path) -> None:
    rows = [comparison([0.99, 1.01] * 4), comparison([1.2] * 8, label=f"{fidelity.CONTROL_LABEL} vs x", control=True)]
    path = tmp_path / "raw.json"
    kept = [asdict(c) for c in rows]
    path.write_text(json.dumps(kept))
    assert fidelity.load_raw(path) == rows


@pytest.mark.parametrize(
    ("interval", "where"),
    [
        ((0.98, 1.02), "inside"),
        ((0.97, 1.03), "inside"),  # the bar's edges belong to it
        ((1.04, 1.2), "outside"),
        ((0.9, 0.9699), "outside"),
        ((0.9, 0.97), "either side"),
        ((0.9, 1.0), "either side"),
    ],
)
def test_placement_against_the_bar(interval: tuple[float, float], where: str) -> None:
    assert fidelity.placement(interval) == where


def test_from_raw_writes_the_table_of_a_kept_run_measuring_nothing(tmp_path: Path, monkeypatch) -> None:
    rows = [comparison([1.0 + 0.001 * i for i in range(7)]), comparison([1.0] * 7, label="x vs y", control=True)]
    raw, out = tmp_path / "raw.json", tmp_path / "table.md"
    raw.write_text(json.dumps([asdict(c) for c in rows]))
    monkeypatch.setattr(fidelity, "compare_model", lambda *args: pytest.fail("--from-raw measured"))
    monkeypatch.setattr(sys, "argv", ["fidelity.py", "--from-raw", str(raw), "--out", str(out), "--rounds", "99"])
    assert fidelity.main() == 0
    table = out.read_text()
    assert "7 alternating rounds" in table  # the run's rounds, not the option's
    assert "| m | 1 | onnxruntime vs bare session.run loop | 10.000 | 10.030 |" in table
    assert "*control (a second bare loop)* rows put a second bare loop" in table
    assert "**2 of 2 ratios within" in table and "**2 of 2 control ratios" in table
