"""The run history: recording, trends, the SVG plot, baselines from the last N runs, and the CLI."""

from __future__ import annotations

import random
import sqlite3
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path

import pytest

from deploybench.cli import main
from deploybench.harness import Stats
from deploybench.history import History, HistoryError, default_history_path
from deploybench.regress import IncompatibleBaselineError, compare
from deploybench.results import Results, Row

ENV = {"hostname": "nightly-1", "cpu": {"model": "Test CPU"}, "gpus": [], "libraries": {"torch": "2.5.0"}}


def row(median: float, runtime: str = "onnxruntime", batch: int = 1, parity: str = "pass", seed: int = 0,
        status: str = "ok") -> Row:
    result = Row(model="test_resnet", format="onnx" if runtime == "onnxruntime" else "pytorch", runtime=runtime,
                 device="cpu", precision="fp32", batch=batch, status=status, parity={"verdict": parity},
                 memory={"peak_rss_mb": 400.0})
    if status == "ok":
        rng = random.Random(seed)
        result.samples_ms = [rng.gauss(median, median * 0.02) for _ in range(100)]
        stats = Stats.from_samples(result.samples_ms)
        result.stats, result.ms_per_image, result.throughput = asdict(stats), stats.median / batch, 1000 / stats.mean
    return result


def night(day: int, *rows: Row, env: dict | None = None) -> Results:
    return Results(config={"models": ["test_resnet"]}, environment=env or ENV, rows=list(rows),
                   created=f"2026-11-{day:02d}T02:00:00+00:00")


@pytest.fixture
def history(tmp_path: Path) -> History:
    return History(tmp_path / "history.sqlite")


def test_default_path_follows_xdg_and_the_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DEPLOYBENCH_HISTORY", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_history_path() == tmp_path / "data" / "deploybench" / "history.sqlite"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_history_path() == Path.home() / ".local" / "share" / "deploybench" / "history.sqlite"
    monkeypatch.setenv("DEPLOYBENCH_HISTORY", str(tmp_path / "mine.sqlite"))
    assert default_history_path() == tmp_path / "mine.sqlite"


def test_recording_is_idempotent_and_keeps_rows_without_raw_samples(history: History) -> None:
    first = history.record(night(1, row(2.0), row(30.0, runtime="torch")))
    assert history.record(night(1, row(2.0), row(30.0, runtime="torch"))) == first
    second = history.record(night(2, row(2.1)))
    assert [(r["id"], r["cells"]) for r in history.runs()] == [(first, 2), (second, 1)]
    with sqlite3.connect(history.path) as conn:
        stored = conn.execute("SELECT row, spread_ms FROM cells WHERE run_id = ? AND runtime = 'onnxruntime'",
                              (first,)).fetchone()
    assert '"samples_ms": []' in stored[0]
    assert stored[1] == pytest.approx(0.04, rel=0.3)  # the robust spread survives the samples


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(HistoryError, match="upgrade deploybench"):
        History(path)


def test_trend_filters_and_orders_runs(history: History) -> None:
    for day, median in ((3, 2.2), (1, 2.0), (2, 2.1)):  # recorded out of order
        history.record(night(day, row(median), row(30.0 + day, runtime="torch")))
    series = history.trend(runtime="onnxruntime")
    (points,) = series.values()
    assert [p.created[:10] for p in points] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert [round(p.median_ms, 1) for p in points] == [2.0, 2.1, 2.2]
    assert len(history.trend("test_resnet")) == 2
    assert history.trend("resnet50") == {}
    assert [len(p) for p in history.trend(last=2).values()] == [2, 2]


def test_baseline_is_the_median_of_the_last_n_nights(history: History) -> None:
    for day, median in ((1, 9.0), (2, 2.0), (3, 2.2), (4, 30.0), (5, 2.1)):  # night 4 was disturbed
        history.record(night(day, row(median, seed=day)))
    current = night(6, row(2.1, seed=6))
    base = history.baseline(4, current)
    (cell,) = base.rows
    assert base.config["runs"] and len(base.config["runs"]) == 4
    assert cell.stats["median"] == pytest.approx(2.15, rel=0.02)  # nights 2-5; night 1 is too old
    assert cell.stats["std"] > 0.04  # widened by the night-to-night spread
    assert compare(base, current).passed


def test_the_current_run_is_never_its_own_baseline(history: History) -> None:
    history.record(night(1, row(2.0)))
    current = night(2, row(4.0))
    history.record(current)
    base = history.baseline(3, current)
    assert base.rows[0].stats["median"] == pytest.approx(2.0, rel=0.02)
    assert not compare(base, current).passed


def test_baseline_uses_only_compatible_runs(history: History) -> None:
    upgraded = dict(ENV, libraries={"torch": "2.6.0"})
    history.record(night(1, row(2.0)))
    history.record(night(2, row(3.0), env=upgraded))
    assert history.baseline(5, night(3, row(2.0))).config["runs"] == [1]
    with pytest.raises(IncompatibleBaselineError, match="libraries.torch: '2.6.0' vs '2.7.0'"):
        history.baseline(5, night(3, row(2.0), env=dict(ENV, libraries={"torch": "2.7.0"})))


def test_baseline_keeps_the_latest_parity_and_status(history: History) -> None:
    history.record(night(1, row(2.0), row(30.0, runtime="torch")))
    history.record(night(2, row(2.0, parity="fail"), row(0, runtime="torch", status="crashed")))
    base = {r.runtime: r for r in history.baseline(2, night(3)).rows}
    assert base["onnxruntime"].parity_verdict == "fail"
    assert base["torch"].status == "crashed"


def test_empty_history_gives_no_baseline(history: History) -> None:
    with pytest.raises(HistoryError, match="no earlier run"):
        history.baseline(3, night(1, row(2.0)))


def test_history_cli_prints_the_trend_and_plots_it(history: History, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    for day, median, parity in ((1, 2.0, "pass"), (2, 2.2, "pass"), (3, 2.1, "fail")):
        history.record(night(day, row(median, parity=parity), row(30.0, runtime="torch", batch=8)))
    plot = tmp_path / "trend.svg"
    code = main(["history", "test_resnet", "--history", str(history.path), "--plot", str(plot)])
    out = capsys.readouterr().out
    assert code == 0
    assert "test_resnet onnx/onnxruntime cpu fp32 b1" in out and "test_resnet pytorch/torch cpu fp32 b8" in out
    assert "2026-11-02 02:00" in out and "+10.0%" in out
    svg = ET.parse(plot).getroot()
    ns = {"s": "http://www.w3.org/2000/svg"}
    assert len(svg.findall(".//s:polyline", ns)) == 2
    hollow = [c for c in svg.findall(".//s:circle[@class='point']", ns) if c.get("fill") == "#fff"]
    assert len(hollow) == 1  # the night parity failed

    assert main(["history", "--runtime", "torch", "--history", str(history.path)]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "onnxruntime" not in out
    assert main(["history", "--runs", "--history", str(history.path)]) == 0
    assert len([line for line in capsys.readouterr().out.splitlines() if "nightly-1" in line]) == 3


def test_regress_cli_against_the_history(history: History, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for day in (1, 2, 3):
        history.record(night(day, row(2.0, seed=day)))
    fine, slow = tmp_path / "fine.json", tmp_path / "slow.json"
    night(4, row(2.0, seed=4)).save(fine)
    night(4, row(3.0, seed=4)).save(slow)
    args = ["regress", "--baseline-history", "3", "--history", str(history.path)]
    assert main([*args, str(fine)]) == 0
    assert main([*args, str(slow)]) == 1
    assert "slower by" in capsys.readouterr().out


def test_regress_cli_with_an_empty_history(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    current = tmp_path / "current.json"
    night(1, row(2.0)).save(current)
    args = ["regress", str(current), "--baseline-history", "3", "--history", str(tmp_path / "new.sqlite")]
    assert main(args) == 2
    assert "no earlier run" in capsys.readouterr().err
    assert main([*args, "--no-baseline-ok", "--markdown", str(tmp_path / "v.md")]) == 0
    assert "no baseline" in (tmp_path / "v.md").read_text()


def test_compare_records_into_the_history(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    db = tmp_path / "h.sqlite"
    code = main(["compare", "--models", "test_resnet", "--runtimes", "onnxruntime", "--precisions", "fp32",
                 "--batch", "1", "--quick", "--no-isolate", "--out", str(tmp_path / "out"),
                 "--cache", str(tmp_path / "cache"), "--history", str(db)])
    assert code == 0, capsys.readouterr().err
    assert f"recorded run 1 in {db}" in capsys.readouterr().err
    (points,) = History(db).trend("test_resnet").values()
    assert points[0].status == "ok" and points[0].ms_per_image > 0


def test_history_cli_records_a_stored_results_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """How a sharded sweep gets into the history: merge the shards, then record the merged file."""
    merged = tmp_path / "merged.json"
    night(1, row(2.0), row(30.0, runtime="torch")).save(merged)
    db = tmp_path / "h.sqlite"
    assert main(["history", "--record", str(merged), "--history", str(db)]) == 0
    assert main(["history", "--record", str(merged), "--history", str(db)]) == 0  # twice: still one run
    assert [r["cells"] for r in History(db).runs()] == [2]
