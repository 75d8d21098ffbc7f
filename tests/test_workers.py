"""One worker per artifact: its batch sizes share a process; a crash costs only its own
cell; ``--isolate cell`` restores a process per cell."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import faulty_plugins
import pytest
from faulty_plugins import TINY_NET

from deploybench.cache import ArtifactCache
from deploybench.harness import MeasurePolicy
from deploybench.results import Results, Row
from deploybench.sweep import Sweep, SweepConfig


@pytest.fixture
def faults() -> Iterator[None]:
    with faulty_plugins.installed():
        yield


def sweep(tmp_path: Path, runtime: str, batches: tuple[int, ...], worker_per: str = "artifact") -> list[Row]:
    config = SweepConfig(
        models=(TINY_NET,),
        runtimes=(runtime,),
        batches=batches,
        policy=MeasurePolicy.quick(),
        parity_images=2,
        worker_per=worker_per,
    )
    return Sweep(config, ArtifactCache(tmp_path / "cache"), Results(), work_dir=tmp_path / "refs").run().rows


def test_an_artifacts_batches_share_one_worker_and_each_checks_parity(tmp_path: Path, faults: None) -> None:
    rows = sweep(tmp_path, "onnxruntime", (1, 2, 4))
    assert [r.status for r in rows] == ["ok"] * 3, [r.message for r in rows]
    pids = {r.runtime_info["worker_pid"] for r in rows}
    assert len(pids) == 1 and os.getpid() not in pids
    # A graph can break at one batch size only (a batch baked into a reshape): every batch is judged.
    assert all(r.parity_verdict == "pass" and r.parity.outputs for r in rows)
    assert all(r.parity_seconds is not None and r.parity_seconds > 0 for r in rows)


def test_a_batch_that_holds_the_parity_images_is_judged_on_its_last_timed_call(tmp_path: Path, faults: None) -> None:
    rows = {r.batch: r for r in sweep(tmp_path, "fault-free-counting", (1, 2, 4))}  # 2 parity images
    assert all(r.status == "ok" and r.parity_verdict == "pass" for r in rows.values()), rows
    timed_calls = {batch: 1 + r.warmup_iters + len(r.samples_ms) for batch, r in rows.items()}  # first call too
    # Batch 1 runs the two images again; batches 2 and 4 already ran them in the window.
    assert rows[1].runtime_info["infer_calls"] == timed_calls[1] + 2
    assert rows[2].runtime_info["infer_calls"] == timed_calls[2]
    assert rows[4].runtime_info["infer_calls"] == timed_calls[4]


def test_a_fault_that_only_a_full_batch_shows_fails_parity_there(tmp_path: Path, faults: None) -> None:
    rows = {r.batch: r for r in sweep(tmp_path, "fault-first-image-b2", (1, 2, 4))}
    assert rows[1].parity_verdict == "pass", rows[1].parity
    for batch in (2, 4):  # judged on the window's outputs (batch 2 holds both parity images)
        assert rows[batch].parity_verdict == "fail", rows[batch].parity
        assert any("hardly varies with the input" in r for r in rows[batch].parity.reasons), rows[batch].parity


def test_isolate_cell_gives_every_cell_its_own_worker(tmp_path: Path, faults: None) -> None:
    rows = sweep(tmp_path, "onnxruntime", (1, 2), worker_per="cell")
    assert len({r.runtime_info["worker_pid"] for r in rows}) == 2


def test_a_crash_costs_only_its_own_cell(tmp_path: Path, faults: None) -> None:
    rows = {r.batch: r for r in sweep(tmp_path, "fault-segfault-b2", (1, 2, 4))}
    assert rows[1].status == "ok" and rows[4].status == "ok"
    assert rows[2].status == "crashed" and "SIGSEGV" in rows[2].message
    # The cells after the crash ran in a fresh worker.
    assert rows[1].runtime_info["worker_pid"] != rows[4].runtime_info["worker_pid"]


def test_a_workers_cells_build_the_model_once_and_record_where_their_time_went(monkeypatch: pytest.MonkeyPatch) -> None:
    from deploybench import cell as cells
    from deploybench import models
    from deploybench.models import ModelRef

    built: list[ModelRef] = []
    real = models.resolve
    monkeypatch.setattr(models, "resolve", lambda ref, **kw: built.append(ref) or real(ref, **kw))
    todo = [
        cells.Cell(
            model=ModelRef(TINY_NET),
            model_name="tiny",
            task="other",
            format="pytorch",
            runtime="torch",
            batch=batch,
            policy=MeasurePolicy.quick(),
        )
        for batch in (1, 2, 4)
    ]
    rows = cells.run_cells(todo)
    assert [r.status for r in rows] == ["ok"] * 3, [r.message for r in rows]
    assert built == [ModelRef(TINY_NET)]
    assert not cells._built  # nothing stays behind in an in-process run
    assert all(r.warmup_seconds is not None and 0 < r.warmup_seconds < 10 for r in rows)


def test_the_window_gives_the_parity_candidate_only_after_one_synchronous_call_on_every_image() -> None:
    import numpy as np

    from deploybench.cell import window_candidate
    from deploybench.harness import Measurement

    class Outputs:
        synchronized = False

        def synchronize(self) -> None:
            self.synchronized = True

        def outputs(self) -> list[np.ndarray]:
            assert self.synchronized
            return [np.arange(8.0).reshape(4, 2)]

    def window(batch: int, in_flight: int) -> Measurement:
        return Measurement(batch, [1.0], 1.0, 1.0, 0, "host", requests_in_flight=in_flight)

    (candidate,) = window_candidate(Outputs(), window(4, 1), 2) or []
    assert candidate.tolist() == [[0.0, 1.0], [2.0, 3.0]]  # the parity images' rows of the last call
    assert window_candidate(Outputs(), window(4, 2), 2) is None  # in flight: outputs of another request
    assert window_candidate(Outputs(), window(1, 1), 2) is None  # the batch does not hold them all
