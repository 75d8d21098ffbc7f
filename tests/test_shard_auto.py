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


@pytest.mark.parametrize(
    "env, text, message",
    [
        ({}, "auto", "found no scheduler array index"),
        ({"SLURM_ARRAY_TASK_ID": "1"}, "auto", "without a numeric SLURM_ARRAY_TASK_MIN"),
        ({"JOB_COMPLETION_INDEX": "x"}, "auto/2", "not a number"),
        ({}, "auto/two", "write auto or auto/N"),
    ],
)
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


def test_a_stepped_slurm_array_counts_its_tasks_not_their_ids() -> None:
    stepped = {
        "SLURM_ARRAY_TASK_ID": "4",
        "SLURM_ARRAY_TASK_MIN": "0",
        "SLURM_ARRAY_TASK_COUNT": "4",
        "SLURM_ARRAY_TASK_STEP": "2",
    }  # --array=0-6:2
    assert parse_shard("auto", stepped) == (3, 4)
    with pytest.raises(UsageError, match="cannot place Slurm task 3"):
        parse_shard("auto", {**stepped, "SLURM_ARRAY_TASK_ID": "3"})


def test_merged_shards_keep_every_models_facts() -> None:
    from deploybench.merge import merge
    from deploybench.model_facts import ModelFacts
    from deploybench.results import Results, Row

    def shard(index: int, model: str) -> Results:
        return Results(
            config={"shard": [index, 2]},
            rows=[Row(model, "onnx", "onnxruntime", "cpu", "fp32", 1)],
            models={model: ModelFacts(parameters=index, flops=2 * index, input_shape=(3, 8, 8))},
        )

    merged = merge([shard(1, "a"), shard(2, "b")], force=True)
    assert set(merged.models) == {"a", "b"} and merged.models["b"].parameters == 2
