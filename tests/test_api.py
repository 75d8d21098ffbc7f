"""The Python API does what the commands do: the README's example gives the CLI's cells."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

import deploybench
from deploybench.cli import main
from deploybench.errors import UnsupportedError, UsageError

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example() -> str:
    text = README.read_text()
    block = re.search(r"<!-- python-api:begin -->\s*```python\n(.*?)```\s*<!-- python-api:end -->", text, re.S)
    assert block, "README.md lost its Python example"
    return block.group(1)


def cells(results_json: Path) -> list[tuple]:
    rows = json.loads(results_json.read_text())["rows"]
    return sorted((r["model"], r["format"], r["runtime"], r["precision"], r["batch"], r["status"]) for r in rows)


def test_the_readme_example_gives_the_cells_the_cli_gives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("openvino")
    pytest.importorskip("onnxruntime")
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(readme_example(), "README.md", "exec"), {})
    assert main(["compare", "--models", "mobilenetv4", "--runtimes", "onnxruntime,openvino", "--batch", "1,8",
                 "--quick", "--out", "cli-results"]) == 0  # fmt: skip
    api_cells, cli_cells = cells(tmp_path / "api-results/results.json"), cells(tmp_path / "cli-results/results.json")
    assert api_cells == cli_cells and len(api_cells) == 6  # fp32 in both runtimes, int8 in OpenVINO; 2 batches
    assert all(cell[-1] == "ok" for cell in api_cells)
    assert len(printed.getvalue().splitlines()) == 6  # one line per row: runtime, batch, ms/img, verdict
    # The same reports and the same comparability record, apart from the command line.
    assert sorted(p.name for p in (tmp_path / "api-results").glob("results.*")) == [
        "results.csv", "results.json", "results.md"]  # fmt: skip
    api_config = json.loads((tmp_path / "api-results/results.json").read_text())["config"]
    cli_config = json.loads((tmp_path / "cli-results/results.json").read_text())["config"]
    assert {k: v for k, v in api_config.items() if k != "argv"} == {k: v for k, v in cli_config.items() if k != "argv"}


def test_compare_resumes_an_output_folder(tmp_path: Path) -> None:
    first = deploybench.compare("test_resnet", runtimes=["onnxruntime"], batches=[1], quick=True, out=tmp_path)
    (row,) = first.rows
    again = deploybench.compare(
        "test_resnet", runtimes=["onnxruntime"], batches=[1, 2], quick=True, out=tmp_path, resume=True
    )
    assert [r.batch for r in again.rows] == [1, 2]
    assert again.rows[0].samples_ms == row.samples_ms  # kept, not measured again
    assert again.environment["cpu"]["model"] == first.environment["cpu"]["model"]  # the machine's fingerprint


def test_bench_and_export_return_typed_objects(tmp_path: Path) -> None:
    results = deploybench.bench("test_resnet", "onnxruntime", batches=[2], quick=True)
    (row,) = results.rows
    assert (row.runtime, row.batch, row.status) == ("onnxruntime", 2, "ok") and row.stats.n >= 5
    (fresh,) = deploybench.export("test_resnet", "onnx", cache=tmp_path)
    (again,) = deploybench.export("test_resnet", "onnx", cache=tmp_path)
    assert not fresh.cached and again.cached and again.artifact.path == fresh.artifact.path
    (rebuilt,) = deploybench.export("test_resnet", "onnx", cache=tmp_path, force=True)
    assert not rebuilt.cached


def test_bad_options_are_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--threads 0"):
        deploybench.compare("test_resnet", runtimes=["onnxruntime"], threads=0, out=tmp_path)
    assert not (tmp_path / "results.json").exists()
    with pytest.raises(UnsupportedError, match="nothing to run"):
        deploybench.compare("test_resnet", runtimes=["onnxruntime"], formats=["ov"])
