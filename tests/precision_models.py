"""Tiny models with one deliberately precision-sensitive layer, for precision triage.

``overflow_net``: the ``amplify`` module scales activations past FP16's largest finite value
(65504), ``shrink`` scales them back; in FP32 nothing is lost, in FP16 ``amplify`` gives Inf.

``outlier_net``: ``stem`` produces one outlier channel (x1000) that ``mix`` ignores. Per-tensor
INT8 on ``mix``'s input must stretch its scale over the outlier, which rounds the channels
``mix`` does read to zero.
"""

from __future__ import annotations

import torch
from torch import nn

from deploybench.models import InputSpec

INPUT = InputSpec(name="input", shape=(3, 32, 32))


class Amplify(nn.Module):
    def __init__(self, gain: float) -> None:
        super().__init__()
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gain


class OverflowNet(nn.Module):
    GAIN = 1e5  # past FP16's largest finite value (65504): the constant and the activations it makes

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.ReLU()
        self.amplify = Amplify(self.GAIN)
        self.shrink = nn.Conv2d(8, 8, 1)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.head = nn.Linear(8 * 16, 10)
        with torch.no_grad():
            self.stem.weight.mul_(4.0)
            self.shrink.weight.div_(self.GAIN)
            self.shrink.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.shrink(self.amplify(self.act(self.stem(x))))).flatten(1))


class OutlierNet(nn.Module):
    OUTLIER = 1000.0

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.ReLU()
        self.mix = nn.Conv2d(8, 8, 1)
        self.act2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.head = nn.Linear(8 * 16, 10)
        with torch.no_grad():
            self.stem.weight[0].abs_().mul_(self.OUTLIER)  # channel 0: large and positive
            self.stem.bias[0] = self.OUTLIER
            self.mix.weight[:, 0] = 0.0  # the outlier carries nothing mix uses
            self.mix.bias.zero_()  # no constant part: the output is all signal, so losing it is plain
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.act2(self.mix(self.act(self.stem(x))))).flatten(1))


def overflow_net() -> nn.Module:
    return OverflowNet()


def outlier_net() -> nn.Module:
    return OutlierNet()


for _factory in (overflow_net, outlier_net):
    _factory.input_spec = INPUT  # type: ignore[attr-defined]
    _factory.task = "other"  # type: ignore[attr-defined]  # judged on error and cosine, not top-1 of random logits
