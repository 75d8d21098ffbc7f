"""--shard auto: the shard index and count from the scheduler running the job."""

from __future__ import annotations

import pytest

from deploybench.errors import UsageError
from deploybench.targets import parse_shard

SLURM = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "4"}


def test_slurm_array_task_counts_from_the_arrays_first_index() -> None:
    assert parse_shard("auto", SLURM) == (3, 4)  # --array=5-8: task 7 is the third of four
    assert parse_shard("auto/4", SLURM) == (3, 4)
    with pytest.raises(UsageError, match="disagrees with the scheduler's 4 array tasks"):
        parse_shard("auto/3", SLURM)


def test_kubernetes_indexed_job_needs_the_count_from_the_user() -> None:
    assert parse_shard("auto/5", {"JOB_COMPLETION_INDEX": "0"}) == (1, 5)
    assert parse_shard("auto/5", {"JOB_COMPLETION_INDEX": "4"}) == (5, 5)
    with pytest.raises(UsageError, match="pass --shard auto/N"):
        parse_shard("auto", {"JOB_COMPLETION_INDEX": "1"})
    with pytest.raises(UsageError, match="read shard 6 of 5"):
        parse_shard("auto/5", {"JOB_COMPLETION_INDEX": "5"})


@pytest.mark.parametrize("env, text, message", [
    ({}, "auto", "found no scheduler array index"),
    ({"SLURM_ARRAY_TASK_ID": "1"}, "auto", "without a numeric SLURM_ARRAY_TASK_MIN"),
    ({"JOB_COMPLETION_INDEX": "x"}, "auto/2", "not a number"),
    ({}, "auto/two", "write auto or auto/N"),
])
def test_nothing_to_read_is_one_clear_error(env, text, message) -> None:
    with pytest.raises(UsageError, match=message):
        parse_shard(text, env)


def test_compare_with_shard_auto_and_no_scheduler_exits_2(monkeypatch, capsys) -> None:
    from deploybench.cli import main

    for name in ("SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"):
        monkeypatch.delenv(name, raising=False)
    assert main(["compare", "--models", "test_resnet", "--shard", "auto"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "found no scheduler array index" in err[0]
