"""A tiny digits classifier (8x8 grayscale) for the dataset-accuracy test, as a ``module:factory``."""

from __future__ import annotations

import torch

from deploybench.models import InputSpec


def digits_cnn() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(128, 10),
    )


digits_cnn.input_spec = InputSpec(name="input", shape=(1, 8, 8), value_range=(0.0, 1.0))  # type: ignore[attr-defined]
digits_cnn.task = "classification"  # type: ignore[attr-defined]
