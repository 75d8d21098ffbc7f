"""Each plugin's own settings: picked from the shared options, validated when built.

A runtime or an exporter declares ``Options``, a frozen dataclass of the settings it reads
(OpenVINO's mode, torch.compile's mode, ONNX Runtime's provider, the ONNX opset, ...).
Building it checks every value, so a mistyped option is one :class:`UsageError` before any
model is built; an exporter's options are also its cache key, so nothing is kept in step
by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from deploybench.errors import UsageError

P = TypeVar("P", bound="PluginOptions")


@dataclass(frozen=True)
class PluginOptions:
    """Base of every plugin's options; a subclass lists its fields and checks them in ``check``."""

    @classmethod
    def pick(cls: type[P], shared: Any) -> P:
        """This plugin's fields, read from the shared ``RuntimeOptions`` or ``ExportOptions``."""
        return cls(**{f.name: getattr(shared, f.name) for f in fields(cls)})

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise :class:`UsageError` for a value the plugin cannot take."""


def one_of(option: str, value: Any, choices: Sequence[Any]) -> None:
    """Refuse ``value`` unless it is one of ``choices``, naming them."""
    if value not in choices:
        raise UsageError(f"{option} {value!r} is not one of {', '.join(str(c) for c in choices)}")


def at_least(option: str, value: float | None, low: float) -> None:
    """Refuse a number below ``low`` (None means the plugin's default)."""
    if value is not None and not value >= low:  # `not >=` also refuses NaN
        raise UsageError(f"{option} {value!r} must be {low:g} or more")
