"""--dataset: a classifier trained here on scikit-learn's digits keeps its accuracy in every format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deploybench.exporters.base import ExportOptions
from deploybench.harness import MeasurePolicy
from deploybench.results import Results
from deploybench.sweep import Sweep, SweepConfig

sklearn = pytest.importorskip("sklearn.datasets")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """Train the digits CNN briefly, save its weights as safetensors, write the test split as PNGs."""
    from digits_model import digits_cnn
    from PIL import Image
    from safetensors.torch import save_file

    digits = sklearn.load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(images))
    train, test = order[:1400], order[1400:1600]
    torch.manual_seed(0)
    model = digits_cnn()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.from_numpy(images[train][:, None]), torch.from_numpy(digits.target[train])
    for _ in range(150):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()
    folder = tmp_path_factory.mktemp("digits")
    save_file(model.state_dict(), str(folder / "digits.safetensors"))
    for i in test:
        class_dir = folder / "data" / str(digits.target[i])
        class_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray((images[i] * 255).round().astype(np.uint8), mode="L").save(class_dir / f"{i}.png")
    return folder / "digits.safetensors", folder / "data"


def test_every_format_keeps_the_reference_accuracy(trained, cache, tmp_path) -> None:
    weights, data = trained
    config = SweepConfig(
        models=("digits_model:digits_cnn",),
        runtimes=("torch", "onnxruntime", "openvino"),
        precisions=("fp32", "int8"),
        batches=(8,),
        checkpoint=str(weights),
        dataset_dir=str(data),
        policy=MeasurePolicy.quick(),
        isolate=False,
        export=ExportOptions(calib_data=str(data)),
    )
    sweep = Sweep(config, cache, Results(), work_dir=tmp_path)
    sweep.run()
    rows = sweep.results.rows
    assert {(r.runtime, r.precision) for r in rows} == {
        ("torch", "fp32"),
        ("onnxruntime", "fp32"),
        ("openvino", "fp32"),
        ("openvino", "int8"),
    }
    for row in rows:
        assert row.status == "ok", row.message
        accuracy = row.parity.accuracy
        assert accuracy["images"] == 200
        assert accuracy["reference_top1"] > 0.85  # the classifier really learned the digits
        allowed = 0.05 if row.precision == "int8" else 0.0
        assert abs(accuracy["delta_top1"]) <= allowed + 1e-9, (row.runtime, row.precision, accuracy)
