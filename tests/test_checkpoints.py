"""Checkpoints load strictly: a state dict of another architecture (or another head) is refused
in one line that names the differing keys, unless --checkpoint-partial; the weights used are
stated by ``info``, the rows and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from faulty_plugins import TINY_NET

from deploybench.cli import main
from deploybench.errors import ModelSpecError
from deploybench.files import module_hash
from deploybench.models import resolve
from deploybench.results import Results
from deploybench.sources import match_state_dict


@pytest.fixture(scope="module")
def resnet18_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision resnet18 state dict: its key names are timm resnet's, so resnet34 shares some of them."""
    torchvision = pytest.importorskip("torchvision")
    path = tmp_path_factory.mktemp("ckpt") / "resnet18_state.pt"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def other_head_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """timm's test_resnet fine-tuned for 10 classes: every key fits, the classifier's shape does not."""
    import timm

    path = tmp_path_factory.mktemp("ckpt") / "ten_classes.pt"
    torch.save(timm.create_model("test_resnet", num_classes=10).state_dict(), path)
    return path


def test_another_architecture_is_refused_naming_the_keys(resnet18_state: Path) -> None:
    with pytest.raises(ModelSpecError) as caught:
        resolve("resnet34", checkpoint=str(resnet18_state)).build()
    message = str(caught.value)
    assert "\n" not in message
    assert "does not fit this model" in message and "--checkpoint-partial" in message
    assert "missing: layer1.2.conv1.weight" in message and "more" in message  # a few keys, then how many more
    assert "0 unexpected" in message and "0 shape-mismatched" in message


def test_a_head_of_another_shape_is_refused_with_both_shapes(other_head_state: Path) -> None:
    with pytest.raises(ModelSpecError, match=r"2 shape-mismatched.*shape: fc.weight \[1000, \d+\] vs \[10, \d+\]"):
        resolve("test_resnet", checkpoint=str(other_head_state)).build()


def test_checkpoint_partial_loads_what_fits_and_counts_the_rest(resnet18_state: Path) -> None:
    spec = resolve("resnet34", checkpoint=str(resnet18_state), checkpoint_partial=True)
    module = spec.build()
    report = spec.checkpoint_load
    assert report is not None and not report.complete
    state = torch.load(resnet18_state, weights_only=True)
    assert torch.equal(module.state_dict()["conv1.weight"], state["conv1.weight"])  # the shared stem is loaded
    assert len(report.loaded) == len(state) and len(report.missing) == len(module.state_dict()) - len(state)
    assert spec.weights.startswith(f"checkpoint {resnet18_state} (partial)")
    assert f"{len(report.loaded)} tensors loaded, {len(report.missing)} missing" in spec.weights


def test_checkpoint_partial_still_refuses_a_file_that_matches_nothing(tmp_path: Path) -> None:
    path = tmp_path / "foreign.pt"
    torch.save({"encoder.weight": torch.zeros(3)}, path)
    with pytest.raises(ModelSpecError, match="matches none"):
        resolve("test_resnet", checkpoint=str(path), checkpoint_partial=True).build()


def test_checkpoint_partial_needs_a_checkpoint() -> None:
    with pytest.raises(ModelSpecError, match="--checkpoint-partial needs --checkpoint"):
        resolve("test_resnet", checkpoint_partial=True)


def test_match_state_dict_sorts_every_key() -> None:
    model = {"a": torch.zeros(2), "b": torch.zeros(3), "c": torch.zeros(1)}
    found = match_state_dict(model, {"a": torch.ones(2), "b": torch.ones(4), "d": torch.ones(1)})
    assert (found.loaded, found.missing, found.unexpected) == (("a",), ("c",), ("d",))
    assert found.mismatched == (("b", (3,), (4,)),)
    assert found.summary() == "1 tensors loaded, 1 missing, 1 unexpected, 1 shape-mismatched"
    assert found.differences() == "missing: c; unexpected: d; shape: b [3] vs [4]"


def test_info_refuses_then_reports_partial_weights(resnet18_state: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["info", "resnet34", "--checkpoint", str(resnet18_state)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint resnet18_state.pt does not fit") and err.count("\n") == 1
    assert main(["info", "resnet34", "--checkpoint", str(resnet18_state), "--checkpoint-partial", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["weights"].startswith(f"checkpoint {resnet18_state} (partial): ")
    assert not any("random initialisation" in note for note in data["notes"])


def test_info_of_a_full_checkpoint_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "w.pt"
    torch.save(resolve(TINY_NET).build().state_dict(), path)
    assert main(["info", TINY_NET, "--checkpoint", str(path), "--json"]) == 0
    assert (
        json.loads(capsys.readouterr().out)["weights"] == f"checkpoint {path} (full): 4 tensors loaded, "
        "0 missing, 0 unexpected, 0 shape-mismatched"
    )
    assert main(["info", TINY_NET, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["weights"] == "factory"
    assert main(["info", "test_resnet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["weights"] == "random (seed 0)"


def test_rows_and_report_say_which_weights_ran(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    trained = resolve(TINY_NET).build()
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.add_(1.0)
    path = tmp_path / "w.pt"
    torch.save(trained.state_dict(), path)
    out = tmp_path / "out"
    code = main(
        [
            "compare",
            "--models",
            TINY_NET,
            "--runtimes",
            "torch",
            "--batch",
            "1",
            "--quick",
            "--no-isolate",
            "--checkpoint",
            str(path),
            "--out",
            str(out),
            "--cache",
            str(tmp_path / "cache"),
        ]
    )
    assert code == 0
    table = capsys.readouterr().out
    results = Results.load(out / "results.json")
    assert [row.weights.split(":")[0] for row in results.rows] == [f"checkpoint {path} (full)"]
    assert results.config["weights"] == {"pretrained": False, "checkpoint": str(path), "checkpoint_partial": False}
    assert f"weights of {TINY_NET}: checkpoint {path} (full)" in table
    assert f"checkpoint {path} (full)" in (out / "results.md").read_text()
    assert module_hash(trained) != module_hash(resolve(TINY_NET).build())  # the weights really differ
