"""An existing .onnx file, runtime-only: info, bench and compare in every runtime that reads ONNX,
with ONNX Runtime FP32 on the CPU as the parity reference, one input or several."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from deploybench import batch as batches
from deploybench.cli import main
from deploybench.inputs import seeded_inputs
from deploybench.models import resolve
from deploybench.results import Results
from deploybench.sweep import ONNX_FILE_REFERENCE, build_reference

pytest.importorskip("onnxruntime")


class OneInput(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.head = torch.nn.Conv2d(3, 8, 3), torch.nn.Linear(8, 10)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(image).mean((2, 3)))


class TwoInputs(OneInput):
    """An image and a side vector, as detectors with an image-size input or fused sensors take."""

    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(8 + 2, 10)

    def forward(self, image: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.head(torch.cat([self.conv(image).mean((2, 3)), meta], 1))


def _export(
    module: torch.nn.Module, names: list[str], shapes: list[tuple[int, ...]], path: Path, dynamic: bool = True
) -> Path:
    torch.manual_seed(0)
    module.eval()
    examples = tuple(torch.rand(1, *shape) for shape in shapes)
    axes = {name: {0: "batch"} for name in [*names, "logits"]} if dynamic else None
    torch.onnx.export(
        module, examples, str(path), input_names=names, output_names=["logits"], dynamic_axes=axes, dynamo=False
    )
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("onnx-files")
    torch.manual_seed(0)
    two = TwoInputs()
    return {
        "one": _export(OneInput(), ["image"], [(3, 32, 32)], root / "one.onnx"),
        "two": _export(two, ["image", "meta"], [(3, 32, 32), (2,)], root / "two.onnx"),
        "static": _export(OneInput(), ["image"], [(3, 32, 32)], root / "static.onnx", dynamic=False),
        "two_module": two,  # type: ignore[dict-item]
    }


def test_info_lists_every_input_and_no_traceback(files: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    assert main(["info", str(files["two"])]) == 0
    out = capsys.readouterr().out
    assert "input 0: {'name': 'image', 'shape': ['batch', 3, 32, 32]" in out
    assert "input 1: {'name': 'meta', 'shape': ['batch', 2]" in out
    assert "parameters: not counted (no PyTorch module)" in out

    assert main(["info", str(files["two"]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [i["name"] for i in data["inputs"]] == ["image", "meta"]
    assert data["outputs"] == [{"name": "logits", "shape": ["batch", 10], "dtype": "float32"}]


def test_the_reference_is_onnx_runtime_over_the_file_with_every_input(files: dict[str, Path], tmp_path: Path) -> None:
    spec = resolve(str(files["two"]))
    assert [i.name for i in spec.inputs] == ["image", "meta"] and not spec.has_module
    inputs = seeded_inputs(spec, 4, seed=3)
    stored = np.load(build_reference(spec, inputs, tmp_path / "ref.npz"))
    image, meta = batches.arrays(batches.load_arrays(stored, "inputs"))
    with torch.inference_mode():
        expected = files["two_module"](torch.from_numpy(image), torch.from_numpy(meta)).numpy()  # type: ignore[operator]
    np.testing.assert_allclose(stored["output0"], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model", ["one", "two"])
def test_compare_runs_the_file_in_every_runtime_that_reads_onnx(
    model: str, files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pytest.importorskip("openvino")
    out = tmp_path / "out"
    code = main(
        [
            "compare",
            "--models",
            str(files[model]),
            "--runtimes",
            "onnxruntime,openvino,torch,torchscript",
            "--precisions",
            "fp32",
            "--batch",
            "1,2",
            "--quick",
            "--no-isolate",
            "--out",
            str(out),
            "--cache",
            str(tmp_path / "cache"),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = Results.load(out / "results.json").rows
    assert {(r.runtime, r.batch) for r in rows} == {(rt, b) for rt in ("onnxruntime", "openvino") for b in (1, 2)}
    for row in rows:
        assert row.status == "ok" and row.parity_verdict == "pass", (row.message, row.parity)
        assert row.parity_reference == ONNX_FILE_REFERENCE.label == "onnxruntime-fp32 (no PyTorch module)"
    assert f"parity of {model} is against onnxruntime-fp32 (no PyTorch module)" in captured.out
    skipped = [line for line in captured.err.splitlines() if "skipped" in line]
    assert any("torch fp32" in line and "is an ONNX file" in line for line in skipped), skipped
    assert any("torchscript fp32" in line and "is an ONNX file" in line for line in skipped), skipped


def test_bench_an_onnx_file(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(
        [
            "bench",
            str(files["one"]),
            "--runtime",
            "onnxruntime",
            "--quick",
            "--no-isolate",
            "--cache",
            str(tmp_path / "cache"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "b1: parity against onnxruntime-fp32 (no PyTorch module)" in out and " pass" in out


def test_a_fixed_batch_file_runs_its_batch_and_says_so_for_others(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "compare",
            "--models",
            str(files["static"]),
            "--runtimes",
            "onnxruntime",
            "--precisions",
            "fp32",
            "--batch",
            "1,2",
            "--quick",
            "--no-isolate",
            "--out",
            str(out),
            "--cache",
            str(tmp_path / "cache"),
        ]
    )
    rows = {r.batch: r for r in Results.load(out / "results.json").rows}
    assert code == 1
    assert rows[1].status == "ok" and rows[1].parity_verdict == "pass"
    assert rows[2].status == "error" and "accepts batch 1 to 1, not 2; pass --batch 1" in rows[2].message
