"""When two runs may be compared: the same machine, the same libraries, the same policy.

``regress`` (the gate), ``merge`` (shards into one run) and ``history`` (a baseline from
recorded nights) all refuse runs whose setups differ, by these rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deploybench.errors import DeployBenchError

if TYPE_CHECKING:
    from deploybench.results import Results

# Libraries whose version changes the numbers; a baseline must match them.
COMPARED_LIBRARIES = ("torch", "torchvision", "timm", "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt")
# Run settings that change the numbers: a quick smoke run is not comparable with a full night.
# Compared only when both documents record them (older documents lack the policy).
COMPARED_CONFIG = ("policy", "threads")


class IncompatibleBaselineError(DeployBenchError):
    """A baseline measured on other hardware or other library versions."""

    def __init__(self, differences: list[str], what: str = "baseline") -> None:
        self.differences = differences
        super().__init__(
            f"the {what} comes from a different machine, library set or measurement policy "
            f"({'; '.join(differences)}); compare runs of the same setup, or pass --force to compare "
            "anyway"
        )


def comparable_fields(environment: dict[str, Any], config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fields a baseline must share with the current run, flattened.

    Machine and library fields are always present (None when unknown); the config fields of
    :data:`COMPARED_CONFIG` only where ``config`` records them.
    """
    libraries = environment.get("libraries") or {}
    gpus = environment.get("gpus") or []
    fields = {
        "cpu.model": (environment.get("cpu") or {}).get("model"),
        "gpus": sorted(g.get("name", "?") for g in gpus),
        "gpus.driver": sorted({str(g.get("driver")) for g in gpus}),
        "gpus.cuda_driver": sorted({str(g.get("cuda_driver")) for g in gpus}),
    }
    fields.update({f"libraries.{name}": libraries.get(name) for name in COMPARED_LIBRARIES})
    fields.update({f"config.{name}": (config or {})[name] for name in COMPARED_CONFIG if name in (config or {})})
    return fields


def incompatibilities(baseline: Results, current: Results) -> list[str]:
    """Each differing field as ``name: baseline value vs current value``; empty when comparable.

    A config field recorded by only one of the two documents is not compared.
    """
    old = comparable_fields(baseline.environment, baseline.config)
    new = comparable_fields(current.environment, current.config)
    return [f"{name}: {old[name]!r} vs {new[name]!r}" for name in old if name in new and old[name] != new[name]]
