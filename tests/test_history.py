"""The run history: recording, trends, the SVG plot, baselines from the last N runs, and the CLI."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import helpers
import pytest

from deploybench import history as history_module
from deploybench.cli import main
from deploybench.comparability import IncompatibleBaselineError
from deploybench.harness import Stats
from deploybench.history import History, HistoryError, MissingHistoryError, NoBaselineError, default_history_path
from deploybench.regress import gate
from deploybench.report.trend import legend_labels
from deploybench.results import Results, Row

ENV = {"hostname": "nightly-1", "cpu": {"model": "Test CPU"}, "gpus": [], "libraries": {"torch": "2.5.0"}}


def row(
    median: float, runtime: str = "onnxruntime", batch: int = 1, parity: str = "pass", seed: int = 0, status: str = "ok"
) -> Row:
    result = Row(
        model="test_resnet",
        format="onnx" if runtime == "onnxruntime" else "pytorch",
        runtime=runtime,
        device="cpu",
        precision="fp32",
        batch=batch,
        status=status,
        parity=helpers.parity(parity),
        memory=helpers.memory(400.0),
    )
    if status == "ok":
        rng = random.Random(seed)
        result.samples_ms = [rng.gauss(median, median * 0.02) for _ in range(100)]
        stats = Stats.from_samples(result.samples_ms)
        result.stats, result.ms_per_image, result.throughput = stats, stats.median / batch, 1000 / stats.mean
    return result


FULL = {"quick": False, "min_iters": 50, "min_seconds": 3.0, "warmup_iters": 10, "warmup_seconds": 1.0}
QUICK = {"quick": True, "min_iters": 5, "min_seconds": 0.2, "warmup_iters": 2, "warmup_seconds": 0.0}


def night(day: int, *rows: Row, env: dict | None = None, **config: object) -> Results:
    return Results(
        config={"models": ["test_resnet"], **config},
        environment=env or ENV,
        rows=list(rows),
        created=f"2026-11-{day:02d}T02:00:00+00:00",
    )


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
        stored = conn.execute(
            "SELECT row, spread_ms FROM cells WHERE run_id = ? AND runtime = 'onnxruntime'", (first,)
        ).fetchone()
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


def test_rows_recorded_when_ms_per_image_ignored_requests_in_flight_read_as_one_images_cost(
    history: History,
) -> None:
    # Before, a row with 2 requests overlapping stored median / batch; read back, it is median / (batch x 2).
    old = row(40.0, runtime="openvino", batch=4)
    old.requests_in_flight, old.ms_per_image = 2, old.stats.median / 4
    old.stats = replace(old.stats, p99=float("nan"))  # as Stats.from_dict fills what an older file lacks
    history.record(night(1, old))
    ((point,),) = history.trend(runtime="openvino").values()
    assert point.ms_per_image == pytest.approx(old.stats.median / 8)
    assert Row.from_dict(old.to_dict()).ms_per_image == pytest.approx(old.stats.median / 8)


def test_baseline_is_the_median_of_the_last_n_nights(history: History) -> None:
    for day, median in ((1, 9.0), (2, 2.0), (3, 2.2), (4, 30.0), (5, 2.1)):  # night 4 was disturbed
        history.record(night(day, row(median, seed=day)))
    current = night(6, row(2.1, seed=6))
    base = history.baseline(4, current)
    (cell,) = base.rows
    assert base.config["runs"] and len(base.config["runs"]) == 4
    assert cell.stats.median == pytest.approx(2.15, rel=0.02)  # nights 2-5; night 1 is too old
    assert cell.stats.std > 0.04  # widened by the night-to-night spread
    assert gate(base, current).passed


def test_the_current_run_is_never_its_own_baseline(history: History) -> None:
    history.record(night(1, row(2.0)))
    current = night(2, row(4.0))
    history.record(current)
    base = history.baseline(3, current)
    assert base.rows[0].stats.median == pytest.approx(2.0, rel=0.02)
    assert not gate(base, current).passed


def test_re_gating_an_older_run_uses_only_earlier_runs(history: History) -> None:
    ids = {day: history.record(night(day, row(2.0 + day / 10, seed=day))) for day in (1, 2, 3, 4, 5)}
    base = history.baseline(7, night(3, row(2.3, seed=30)))
    assert base.config["runs"] == [ids[2], ids[1]]  # newest first; nights 3-5 are not earlier
    with pytest.raises(NoBaselineError, match="no earlier run"):
        history.baseline(7, night(1, row(2.0)))


def test_baseline_uses_only_compatible_runs(history: History) -> None:
    upgraded = dict(ENV, libraries={"torch": "2.6.0"})
    history.record(night(1, row(2.0)))
    history.record(night(2, row(3.0), env=upgraded))
    assert history.baseline(5, night(3, row(2.0))).config["runs"] == [1]
    with pytest.raises(IncompatibleBaselineError, match="libraries.torch: '2.6.0' vs '2.7.0'"):
        history.baseline(5, night(3, row(2.0), env=dict(ENV, libraries={"torch": "2.7.0"})))


def test_baseline_uses_only_runs_with_the_same_measurement_policy(history: History) -> None:
    full_ids = [history.record(night(day, row(2.0, seed=day), policy=FULL)) for day in (1, 2)]
    quick_ids = [history.record(night(day, row(2.6, seed=day), policy=QUICK)) for day in (3, 4)]
    assert history.baseline(5, night(5, row(2.0), policy=FULL)).config["runs"] == full_ids[::-1]
    quick_base = history.baseline(5, night(5, row(2.6), policy=QUICK))
    assert quick_base.config["runs"] == quick_ids[::-1] and quick_base.config["policy"] == QUICK
    with pytest.raises(IncompatibleBaselineError, match="config.policy"):
        gate(quick_base, night(5, row(2.6), policy=FULL))  # the baseline carries its policy


def test_comparability_is_decided_when_reading_not_when_recording(
    history: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A library added to the compared set later must not make every recorded run incomparable."""
    with_numpy = dict(ENV, libraries={"torch": "2.5.0", "numpy": "2.1.0"})
    history.record(night(1, row(2.0), env=with_numpy))
    monkeypatch.setattr("deploybench.comparability.COMPARED_LIBRARIES", ("torch", "numpy"))
    assert len(history.baseline(3, night(2, row(2.0), env=with_numpy)).config["runs"]) == 1
    other_numpy = dict(ENV, libraries={"torch": "2.5.0", "numpy": "2.2.0"})
    with pytest.raises(IncompatibleBaselineError, match="libraries.numpy: '2.1.0' vs '2.2.0'"):
        history.baseline(3, night(2, row(2.0), env=other_numpy))


def test_baseline_keeps_the_latest_parity_and_status(history: History) -> None:
    history.record(night(1, row(2.0), row(30.0, runtime="torch")))
    history.record(night(2, row(2.0, parity="fail"), row(0, runtime="torch", status="crashed")))
    base = {r.runtime: r for r in history.baseline(2, night(3)).rows}
    assert base["onnxruntime"].parity_verdict == "fail"
    assert base["torch"].status == "crashed"


def test_empty_history_gives_no_baseline(history: History) -> None:
    with pytest.raises(HistoryError, match="no earlier run"):
        history.baseline(3, night(1, row(2.0)))


def test_a_shard_is_not_recorded(history: History) -> None:
    with pytest.raises(HistoryError, match="shard 1/2 of a sweep.*deploybench merge"):
        history.record(night(1, row(2.0), shard=[1, 2]))
    assert history.runs() == []
    history.record(night(1, row(2.0), shard=[1, 1]))  # an unsharded (or merged) sweep is a run
    assert len(history.runs()) == 1


# Opening, locking and concurrent writers -------------------------------------------------------


def test_sqlite_failures_become_one_line_history_errors(history: History, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history_module, "BUSY_TIMEOUT_S", 0.05)
    with sqlite3.connect(history.path, isolation_level=None) as other:
        other.execute("BEGIN EXCLUSIVE")  # another writer holds the database
        with pytest.raises(HistoryError, match="database is locked.*retry when it is done"):
            history.record(night(1, row(2.0)))
        other.execute("ROLLBACK")
    corrupt = history.path.with_name("corrupt.sqlite")
    corrupt.write_bytes(b"not a database, " * 512)
    with pytest.raises(HistoryError, match="file is not a database"):
        History(corrupt)


def test_opening_an_up_to_date_history_writes_nothing(history: History, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a missing or older schema is written on open, so an open never waits for another writer."""
    history.record(night(1, row(2.0)))
    monkeypatch.setattr(history_module, "BUSY_TIMEOUT_S", 0.05)
    with sqlite3.connect(history.path, isolation_level=None) as other:
        other.execute("BEGIN IMMEDIATE")  # another process in the middle of recording
        assert len(History(history.path).runs()) == 1
        other.execute("ROLLBACK")


RECORDER = """
import sys, time
from pathlib import Path
from deploybench.history import History
from deploybench.results import Results

db, ready, go, *documents = sys.argv[1:]
runs = [Results.load(Path(d)) for d in documents]
history = History(db)
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.001)
print(" ".join(str(history.record(run)) for run in runs))
"""


def test_two_processes_recording_the_same_documents_at_once(tmp_path: Path) -> None:
    """Both succeed and each document is stored once (the duplicate check and the insert are one transaction)."""
    documents = []
    for minute in range(40):  # many documents: the two processes collide on some of them (before the fix, on most)
        document = night(1, row(2.0, seed=minute), row(30.0, runtime="torch", seed=minute))
        document.created = f"2026-11-01T02:{minute:02d}:00+00:00"
        documents.append(tmp_path / f"run{minute}.json")
        document.save(documents[-1])
    db, go = tmp_path / "shared.sqlite", tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", RECORDER, str(db), str(tmp_path / f"ready{i}"), str(go), *map(str, documents)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (1, 2)
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready{i}").exists() for i in (1, 2)) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()  # both start recording together
    outputs = [worker.communicate(timeout=120) for worker in workers]
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-2000:]
    assert outputs[0][0] == outputs[1][0]  # the same run ids in both processes
    runs = History(db).runs()
    assert len(runs) == 40 and {r["cells"] for r in runs} == {2}


def test_read_paths_open_the_database_read_only(
    history: History, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for day in (1, 2):
        history.record(night(day, row(2.0, seed=day)))
    current = tmp_path / "current.json"
    night(3, row(2.0, seed=3)).save(current)
    opened: list[str] = []
    real_connect = sqlite3.connect

    def spy(database: str, *args: object, **kwargs: object) -> sqlite3.Connection:
        opened.append(str(database))
        return real_connect(database, *args, **kwargs)

    monkeypatch.setattr(history_module.sqlite3, "connect", spy)
    db = str(history.path)
    assert main(["history", "--history", db]) == 0
    assert main(["history", "--runs", "--history", db]) == 0
    assert main(["regress", str(current), "--baseline-history", "2", "--history", db]) == 0
    assert opened and all(uri.startswith("file:") and "mode=ro" in uri for uri in opened), opened
    reader = History(history.path, read_only=True)
    assert len(reader.runs()) == 2
    with pytest.raises(HistoryError, match="read-only"):
        reader.record(night(4, row(2.0)))


def test_reading_a_history_nobody_may_write(history: History) -> None:
    """A history on a read-only share: the file and its folder unwritable for the reader."""
    history.record(night(1, row(2.0)))
    as_nobody: list[str] = []
    if os.geteuid() == 0:  # root writes anyway: read as an unprivileged user, if there is a way to become one
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: file permissions cannot make the history read-only")
        as_nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    share = Path(tempfile.mkdtemp(prefix="deploybench-share-"))  # outside pytest's root-only folders
    try:
        shutil.copy(history.path, share / "history.sqlite")
        (share / "history.sqlite").chmod(0o444)
        share.chmod(0o555)
        code = (
            "import sys\nfrom deploybench.cli import main\n"
            "sys.exit(main(['history', '--runs', '--history', sys.argv[1]]))"
        )
        done = subprocess.run(
            [*as_nobody, sys.executable, "-c", code, str(share / "history.sqlite")],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=share,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert "nightly-1" in done.stdout
        assert sorted(p.name for p in share.iterdir()) == ["history.sqlite"]  # nothing written beside it
    finally:
        share.chmod(0o755)
        shutil.rmtree(share)


def test_a_missing_history_is_not_created_by_readers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    absent = tmp_path / "absent.sqlite"
    with pytest.raises(MissingHistoryError, match="compare ... --record"):
        History(absent, read_only=True)
    assert main(["history", "--history", str(absent)]) == 2
    assert "no history at" in capsys.readouterr().err and not absent.exists()


def test_history_takes_its_path_as_a_value_never_a_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """`history --history resnet50` once made a database named resnet50 and showed every model."""
    monkeypatch.chdir(tmp_path)
    assert main(["history", "--history", "resnet50"]) == 2
    assert not (tmp_path / "resnet50").exists()
    assert main(["history", "resnet50", "--history"]) == 2
    assert "requires an argument" in capsys.readouterr().err
    for option in ("--last", "--batch"):
        assert main(["history", option, "0", "--history", "h.sqlite"]) == 2


def test_history_cli_prints_the_trend_and_plots_it(
    history: History, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    for day, median, parity in ((1, 2.0, "pass"), (2, 2.2, "pass"), (3, 2.1, "fail")):
        history.record(night(day, row(median, parity=parity), row(30.0, runtime="torch", batch=8)))
    plot = tmp_path / "trend.svg"
    code = main(["history", "test_resnet", "--history", str(history.path), "--plot", str(plot)])
    out = capsys.readouterr().out
    assert code == 0
    assert "test_resnet onnx/onnxruntime cpu fp32 b1" in out and "test_resnet pytorch/torch cpu fp32 b8" in out
    assert "2026-11-02 02:00" in out and "+10%" in out
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


def test_legend_labels_are_short_and_distinct() -> None:
    keys = [
        "m|onnx|openvino|cpu|fp32|1",
        "m|ov|openvino|cpu|fp32|1",
        "m|onnx|onnxruntime|cpu|fp32|1",
        "m|pytorch|torch|cpu|fp32|8",
    ]
    labels, shared = legend_labels(keys)
    # OpenVINO loads two formats here, so its labels name them; the other runtimes need no format.
    assert [labels[key] for key in keys] == [
        "onnx/openvino fp32 b1",
        "ov/openvino fp32 b1",
        "onnxruntime fp32 b1",
        "torch fp32 b8",
    ]
    assert shared == "m, cpu"
    labels, shared = legend_labels(["a|onnx|onnxruntime|cpu|fp32|1", "b|onnx|onnxruntime|cuda|fp32|1"])
    assert list(labels.values()) == ["a onnxruntime cpu fp32 b1", "b onnxruntime cuda fp32 b1"] and shared == ""


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


def test_regress_cli_with_an_empty_or_missing_history(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    current = tmp_path / "current.json"
    night(1, row(2.0)).save(current)
    History(tmp_path / "empty.sqlite")
    for name, why in (("empty.sqlite", "no earlier run"), ("absent.sqlite", "no history at")):
        args = ["regress", str(current), "--baseline-history", "3", "--history", str(tmp_path / name)]
        assert main(args) == 2
        assert why in capsys.readouterr().err
        markdown = tmp_path / f"{name}.md"
        assert main([*args, "--no-baseline-ok", "--markdown", str(markdown)]) == 0  # a first night passes
        assert "no baseline" in markdown.read_text()
    assert not (tmp_path / "absent.sqlite").exists()


COMPARE = [
    "compare",
    "--models",
    "test_resnet",
    "--runtimes",
    "onnxruntime",
    "--precisions",
    "fp32",
    "--batch",
    "1",
    "--quick",
    "--no-isolate",
]


def test_compare_records_into_the_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    db = tmp_path / "default.sqlite"
    monkeypatch.setenv("DEPLOYBENCH_HISTORY", str(db))
    code = main([*COMPARE, "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"), "--record"])
    assert code == 0, capsys.readouterr().err
    assert f"recorded run 1 in {db}" in capsys.readouterr().err
    (points,) = History(db).trend("test_resnet").values()
    assert points[0].status == "ok" and points[0].ms_per_image > 0

    other = tmp_path / "other.sqlite"  # --history PATH names the database and implies --record
    assert main([*COMPARE, "--cache", str(tmp_path / "cache"), "--history", str(other)]) == 0
    assert len(History(other).runs()) == 1 and len(History(db).runs()) == 1
    assert main([*COMPARE, "--cache", str(tmp_path / "cache")]) == 0  # neither option: nothing recorded
    assert len(History(db).runs()) == 1


def test_compare_refuses_to_record_a_shard_before_running(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    db, out = tmp_path / "h.sqlite", tmp_path / "out"
    code = main(
        [
            *COMPARE,
            "--shard",
            "1/2",
            "--out",
            str(out),
            "--cache",
            str(tmp_path / "cache"),
            "--record",
            "--history",
            str(db),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "this run (--shard 1/2) is shard 1/2 of a sweep" in err and "history --record all.json" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists() and not db.exists()  # refused before running


def test_history_cli_records_a_stored_results_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """How a sharded sweep gets into the history: merge the shards, then record the merged file."""
    merged = tmp_path / "merged.json"
    night(1, row(2.0), row(30.0, runtime="torch")).save(merged)
    db = tmp_path / "h.sqlite"
    assert main(["history", "--record", str(merged), "--history", str(db)]) == 0
    assert main(["history", "--record", str(merged), "--history", str(db)]) == 0  # twice: still one run
    assert [r["cells"] for r in History(db).runs()] == [2]
    shard = tmp_path / "shard.json"
    night(2, row(2.0), shard=[2, 3]).save(shard)
    assert main(["history", "--record", str(shard), "--history", str(db)]) == 2
    assert f"{shard} is shard 2/3 of a sweep" in capsys.readouterr().err
    assert len(History(db).runs()) == 1
