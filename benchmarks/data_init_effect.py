"""What ``--data-init`` does to random-weight models: how much their outputs follow the input,
and how much a bf16 computation moves them (their sensitivity to precision).

For each model, with and without BatchNorm statistics re-estimated on bundled photos: the
spread of the outputs across the 8 parity images over their RMS, and the worst image's RMS
error of a bf16-autocast forward pass over the output's RMS (the class scores for YOLO).
Writes the table into the README between the data-init markers.
Run: python benchmarks/data_init_effect.py [--models mobilenetv4,resnet50,yolov8n]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from deploybench.models import ModelRef, resolve
from deploybench.sample_images import PARITY_SEED, sample_batch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_block import publish


def _first(output: object) -> np.ndarray:
    import torch

    tensor = output[0] if isinstance(output, (list, tuple)) else output
    assert isinstance(tensor, torch.Tensor)
    array = tensor.float().numpy().astype(np.float64)
    return array[:, 4:] if array.ndim == 3 else array  # a YOLO head: its class scores


def figures(name: str, data_init: bool) -> tuple[float, float]:
    """(spread across images / RMS, worst image's bf16 error / RMS)."""
    import torch

    spec = resolve(ModelRef(name, data_init=data_init))
    module = spec.build()
    inputs, _ = sample_batch(spec.input, spec.preprocess, 8, PARITY_SEED)
    with torch.no_grad():
        exact = _first(module(torch.from_numpy(inputs)))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            rounded = _first(module(torch.from_numpy(inputs)))
    flat, other = exact.reshape(len(exact), -1), rounded.reshape(len(rounded), -1)
    rms = float(np.sqrt(np.mean(flat**2)))
    spread = float(np.sqrt(np.mean((flat - flat.mean(axis=0)) ** 2))) / rms
    error = float(np.sqrt(np.mean((other - flat) ** 2, axis=1)).max()) / rms
    return spread, error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="mobilenetv4,resnet50,yolov8n")
    args = parser.parse_args()
    lines = [
        "| model | spread / RMS | with --data-init | bf16 error / RMS | with --data-init |",
        "|---|---|---|---|---|",
    ]
    for name in args.models.split(","):
        (spread, error), (spread_init, error_init) = figures(name, False), figures(name, True)
        lines.append(f"| {name} | {spread:.3f} | {spread_init:.3f} | {error:.2%} | {error_init:.2%} |")
    table = (
        "\n".join(lines) + "\n\nWritten by `benchmarks/data_init_effect.py` (random weights, seed 0, 8 parity images)."
    )
    publish(table, block="data-init")


if __name__ == "__main__":
    main()
