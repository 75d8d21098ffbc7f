"""Checkpoints load as weights only (or safetensors); a pickle that needs code is refused
unless the user passes --trust-checkpoint; ``module:factory`` is documented as running the
user's code."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from faulty_plugins import TINY_NET, TrustMarker

from deploybench.cli import main
from deploybench.errors import ModelSpecError
from deploybench.files import module_hash
from deploybench.models import resolve

DOCS = Path(__file__).resolve().parents[1] / "docs" / "faults.md"


@pytest.fixture
def trained() -> torch.nn.Module:
    """The tiny model with weights unlike its seeded initialisation, as a real checkpoint would have."""
    module = resolve(TINY_NET).factory()
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.mul_(-3.0).add_(0.5)
    return module


def loaded_hash(checkpoint: Path, trust: bool = False) -> str:
    return module_hash(resolve(TINY_NET, checkpoint=str(checkpoint), trust_checkpoint=trust).build())


def test_a_state_dict_loads_without_the_flag(tmp_path: Path, trained: torch.nn.Module) -> None:
    path = tmp_path / "weights.pt"
    torch.save(trained.state_dict(), path)
    assert loaded_hash(path) == module_hash(trained)
    assert loaded_hash(path) != module_hash(resolve(TINY_NET).build())  # the weights really changed


def test_a_safetensors_file_loads_without_the_flag(tmp_path: Path, trained: torch.nn.Module) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "weights.safetensors"
    save_file(trained.state_dict(), str(path))
    assert loaded_hash(path) == module_hash(trained)


def test_a_training_checkpoint_dict_loads_its_state_dict(tmp_path: Path, trained: torch.nn.Module) -> None:
    path = tmp_path / "last.pt"
    torch.save({"epoch": 7, "state_dict": trained.state_dict(), "optimizer": {"lr": 0.1}}, path)
    assert loaded_hash(path) == module_hash(trained)


def pickle_that_runs_code(tmp_path: Path, trained: torch.nn.Module) -> tuple[Path, Path]:
    """A checkpoint whose unpickling calls a function (it creates ``marker``)."""
    marker = tmp_path / "code-ran"
    path = tmp_path / "with-code.pt"
    torch.save({"state_dict": trained.state_dict(), "extra": TrustMarker(str(marker))}, path)
    return path, marker


def test_a_pickle_that_needs_code_is_refused_and_its_code_never_runs(tmp_path: Path, trained: torch.nn.Module) -> None:
    path, marker = pickle_that_runs_code(tmp_path, trained)
    with pytest.raises(ModelSpecError, match="--trust-checkpoint") as caught:
        loaded_hash(path)
    assert "pickled code" in str(caught.value)
    assert not marker.exists()


def test_trust_checkpoint_loads_it_and_runs_its_code(tmp_path: Path, trained: torch.nn.Module) -> None:
    path, marker = pickle_that_runs_code(tmp_path, trained)
    assert loaded_hash(path, trust=True) == module_hash(trained)
    assert marker.exists()  # which is exactly why the flag has to be asked for


def test_the_cli_refuses_without_the_flag_and_loads_with_it(
    tmp_path: Path, trained: torch.nn.Module, capsys: pytest.CaptureFixture
) -> None:
    path, marker = pickle_that_runs_code(tmp_path, trained)
    assert main(["info", TINY_NET, "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--trust-checkpoint" in err and "Traceback" not in err
    assert not marker.exists()
    assert main(["info", TINY_NET, "--checkpoint", str(path), "--trust-checkpoint"]) == 0
    assert "parameters" in capsys.readouterr().out


def test_a_whole_pickled_module_is_refused(tmp_path: Path, trained: torch.nn.Module) -> None:
    path = tmp_path / "model.pt"
    torch.save(trained, path)  # torch.save(model): unpickling rebuilds the classes by import
    with pytest.raises(ModelSpecError, match="--trust-checkpoint"):
        loaded_hash(path)


def test_ultralytics_weights_files_need_the_flag(tmp_path: Path) -> None:
    pytest.importorskip("ultralytics")
    weights = tmp_path / "yolov8n.pt"
    weights.write_bytes(b"not inspected: refused before loading")
    with pytest.raises(ModelSpecError, match="--trust-checkpoint"):  # the task is read from inside: refused at once
        resolve(str(weights))


def test_module_factory_is_documented_as_running_the_users_code() -> None:
    from deploybench.sources import PythonSource

    assert "runs the user's code" in (PythonSource.__doc__ or "")
    text = DOCS.read_text()
    assert "module:factory" in text and "runs your code" in text
    assert "--trust-checkpoint" in text
