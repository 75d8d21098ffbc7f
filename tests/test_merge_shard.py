"""`--shard I/N` plus `merge` reproduce the unsharded sweep; merge refuses documents that do not belong together."""

from __future__ import annotations

from pathlib import Path

import helpers
import pytest

from deploybench.cache import ArtifactCache
from deploybench.cli import main
from deploybench.comparability import IncompatibleBaselineError
from deploybench.env import fingerprint
from deploybench.harness import MeasurePolicy
from deploybench.merge import MergeError, merge, missing_shards
from deploybench.results import Results, Row
from deploybench.sweep import Sweep, SweepConfig, shard_of


def sweep_config(shard: tuple[int, int]) -> SweepConfig:
    return SweepConfig(
        models=("test_resnet",),
        runtimes=("torch", "onnxruntime"),
        precisions=("fp32",),
        batches=(1, 2),
        policy=MeasurePolicy.quick(),
        isolate=False,
        shard=shard,
    )


def run(shard: tuple[int, int], cache: ArtifactCache, folder: Path) -> Results:
    """A sweep as `compare` records it (the config keys it writes included)."""
    config = sweep_config(shard)
    results = Results(
        config={
            "models": list(config.models),
            "runtimes": list(config.runtimes),
            "precisions": list(config.precisions),
            "batches": list(config.batches),
            "device": config.device,
            "shard": list(shard),
            "argv": [f"--shard={shard[0]}/2"],
        },
        environment=fingerprint(),
    )
    return Sweep(config, cache, results, work_dir=folder).run()


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Results]:
    folder = tmp_path_factory.mktemp("shards")
    cache = ArtifactCache(folder / "cache")
    return {"whole": run((1, 1), cache, folder), "1/2": run((1, 2), cache, folder), "2/2": run((2, 2), cache, folder)}


def keys(results: Results) -> set[str]:
    return {row.key for row in results.rows}


def test_the_cell_keys_split_across_both_shards() -> None:
    """Guards the test below: with these keys neither shard is empty, on every machine."""
    cells = [
        f"test_resnet|{fmt}|{rt}|cpu|fp32|{b}"
        for fmt, rt in (("pytorch", "torch"), ("onnx", "onnxruntime"))
        for b in (1, 2)
    ]
    assert {shard_of(key, 2) for key in cells} == {1, 2}


def test_shards_are_disjoint_and_merge_to_the_unsharded_cells(sweeps: dict[str, Results]) -> None:
    whole, first, second = sweeps["whole"], sweeps["1/2"], sweeps["2/2"]
    assert len(keys(whole)) == 4 and all(r.status == "ok" for r in whole.rows)
    assert keys(first) and keys(second) and not keys(first) & keys(second)
    merged = merge([first, second])
    assert keys(merged) == keys(whole)
    assert merged.config["shard"] == [1, 1] and len(merged.config["merged_from"]) == 2
    assert (merged.config["shards"], merged.config["missing_shards"]) == (2, [])
    assert missing_shards([first, second]) == [] and missing_shards([second]) == ["1/2"]
    assert merge([second]).config["missing_shards"] == ["1/2"]  # the merged document says it is incomplete


def test_merge_cli(sweeps: dict[str, Results], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for name in ("1/2", "2/2"):
        sweeps[name].save(tmp_path / f"shard{name[0]}.json")
    out = tmp_path / "merged.json"
    assert main(["merge", str(tmp_path / "shard1.json"), str(tmp_path / "shard2.json"), "-o", str(out)]) == 0
    assert keys(Results.load(out)) == keys(sweeps["whole"])
    assert main(["merge", str(tmp_path / "shard2.json"), "-o", str(tmp_path / "part.json")]) == 0
    assert "shards 1/2 are not among the inputs" in capsys.readouterr().err
    assert Results.load(tmp_path / "part.json").config["missing_shards"] == ["1/2"]


def document(config: dict, *rows: Row, cpu: str = "Test CPU") -> Results:
    return Results(config=config, environment={"cpu": {"model": cpu}, "gpus": [], "libraries": {}}, rows=list(rows))


def cell(batch: int, median: float = 2.0) -> Row:
    return Row("m", "onnx", "onnxruntime", "cpu", "fp32", batch, stats=helpers.stats(median=median))


def test_identical_duplicates_are_merged_once() -> None:
    merged = merge([document({"shard": [1, 2]}, cell(1)), document({"shard": [2, 2]}, cell(1), cell(2))])
    assert [r.batch for r in merged.rows] == [1, 2]


def test_conflicting_duplicates_are_refused() -> None:
    with pytest.raises(MergeError, match=r"cell m\|onnx\|onnxruntime\|cpu\|fp32\|1 is in document 1 and document 2"):
        merge([document({}, cell(1, 2.0)), document({}, cell(1, 2.5))])


def test_different_configurations_are_refused_with_the_keys_named() -> None:
    with pytest.raises(MergeError, match=r"models: \['a'\] vs \['b'\]"):
        merge([document({"models": ["a"], "shard": [1, 2]}), document({"models": ["b"], "shard": [2, 2]})])


def test_shards_of_different_splits_are_refused() -> None:
    """1/2 and 1/3 are not parts of one sweep: a cell could be in both or in neither."""
    with pytest.raises(MergeError, match="document 2 is shard 1/3 and document 1 is shard 1/2"):
        merge([document({"shard": [1, 2]}, cell(1)), document({"shard": [1, 3]}, cell(2))])
    with pytest.raises(MergeError, match="different splits"):
        merge([document({}, cell(1)), document({"shard": [2, 2]}, cell(2))])  # an unsharded run is 1/1


def test_different_machines_need_force() -> None:
    docs = [document({}, cell(1)), document({}, cell(2), cpu="Other CPU")]
    with pytest.raises(IncompatibleBaselineError, match="cpu.model"):
        merge(docs)
    assert len(merge(docs, force=True).rows) == 2
