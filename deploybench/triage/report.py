"""What a triage found: per-layer errors, the first jump, the remedy and its measured cost (typed, JSON round-trip)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class LayerError:
    """One intermediate tensor that the reference and the candidate both expose."""

    depth: int  # position in the reference graph's topological order
    name: str  # node name (ONNX) or friendly name (OpenVINO): what a keep list names
    op: str
    module: str | None  # the PyTorch module path, where the exporter kept it
    error: float | None  # RMS error / the reference tensor's spread; None: NaN/Inf
    cosine: float | None  # centred cosine; None: NaN/Inf or a constant reference
    growth: float | None  # error / the largest input error; None: finite inputs became NaN/Inf
    nonfinite: int = 0

    @property
    def where(self) -> str:
        return f"{self.name} (module {self.module})" if self.module else self.name


@dataclass(frozen=True)
class JumpRule:
    """A layer "jumps" when its error is at least ``min_error`` and ``min_growth`` times its inputs'."""

    min_error: float
    min_growth: float


@dataclass
class Remedy:
    """The smallest set of layers found to keep in FP32, and how the format expresses it."""

    keep: list[str]
    modules: list[str | None]
    mechanism: str  # e.g. "onnxruntime float16 node_block_list", "NNCF IgnoredScope(names=...)"
    verdict_before: str
    verdict_after: str
    trials: int  # candidate graphs built and judged while searching
    export_command: str  # how to build the fixed artifact by hand


@dataclass
class FixRow:
    """One side of ``--fix``: the artifact measured as deployed, with its parity verdict."""

    variant: str  # "before" | "after"
    keep: int  # layers kept in FP32
    status: str
    verdict: str | None
    key_figure: str
    reasons: list[str]
    ms_per_image: float | None
    throughput: float | None
    cv: float | None
    artifact_mb: float | None


@dataclass
class Triage:
    model: str
    format: str
    precision: str
    runtime: str
    reference: str  # what the candidate was compared with, in words
    images: int
    rule: JumpRule
    layers_total: int  # layers compared; ``layers`` keeps at most the cap
    layers: list[LayerError]
    first_jump: LayerError | None
    verdict: str  # end-to-end parity of the candidate as triaged
    remedy: Remedy | None = None
    remedy_note: str = ""  # why there is no remedy
    fix: list[FixRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Triage:
        data = dict(data)
        data["rule"] = JumpRule(**data["rule"])
        data["layers"] = [LayerError(**layer) for layer in data["layers"]]
        data["first_jump"] = LayerError(**data["first_jump"]) if data.get("first_jump") else None
        data["remedy"] = Remedy(**data["remedy"]) if data.get("remedy") else None
        data["fix"] = [FixRow(**row) for row in data.get("fix", [])]
        return cls(**data)
