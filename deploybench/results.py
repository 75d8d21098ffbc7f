"""Result rows and the versioned results document (JSON that loads back exactly)."""

from __future__ import annotations

import json
from dataclasses import asdict, astuple, dataclass, field, fields
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploybench.errors import ResultsError
from deploybench.files import write_json_atomic
from deploybench.memory import MemoryReport
from deploybench.model_facts import ModelFacts
from deploybench.stats import Stats, per_image_ms

if TYPE_CHECKING:  # the comparator imports numpy; results stay light for the CLI's first lines
    from deploybench.parity import Parity

SCHEMA_VERSION = 1


class Status(str, Enum):
    """How a row ended: ``ok``, or how it failed (every failure carries a message).

    A ``str`` enum: it is written to JSON as its value and equals that text.
    """

    OK = "ok"
    ERROR = "error"  # the runtime or the parity check raised
    OOM = "oom"  # out of memory, host or device
    TIMEOUT = "timeout"  # the worker hung past --timeout and was killed
    CRASHED = "crashed"  # the worker died (a signal, a native abort)
    EXPORT_FAILED = "export-failed"

    def __str__(self) -> str:
        return self.value


STATUSES = tuple(status.value for status in Status)


@dataclass(frozen=True, order=True)
class CellKey:
    """What names one cell: the planned cell, the cell a worker measures and its row share it.

    Its text, ``model|format|runtime|device|precision|batch``, is how the history database and
    the shard hash store it; ``parse`` reads it back.
    """

    model: str
    format: str
    runtime: str
    device: str
    precision: str
    batch: int

    def __str__(self) -> str:
        return "|".join(str(value) for value in astuple(self))

    @classmethod
    def parse(cls, text: str) -> CellKey:
        model, fmt, runtime, device, precision, batch = text.split("|")
        return cls(model, fmt, runtime, device, precision, int(batch))


# Fields that name a row's cell, with their types: a row without them is not deploybench's.
KEY_FIELDS: dict[str, type] = {
    "model": str,
    "format": str,
    "runtime": str,
    "device": str,
    "precision": str,
    "batch": int,
}
WHERE_FROM = "pass the results.json that deploybench compare --out wrote"


@dataclass
class ArtifactRecord:
    """The artifact a row ran: where it lies, its size, and how it was obtained."""

    path: str | None = None
    size_mb: float | None = None
    export_seconds: float | None = None
    cache_hit: bool | None = None
    manifest: dict[str, Any] = field(default_factory=dict)  # exporter details worth keeping (opset, calibration)

    def to_dict(self) -> dict[str, Any]:
        """Where and how large only when known: a row that failed before its artifact was
        opened keeps the keys it always had (how it was obtained)."""
        data = asdict(self)
        return {k: v for k, v in data.items() if v is not None or k not in ("path", "size_mb")}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtifactRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Row:
    """One (model, format, runtime, device, precision, batch) cell and everything measured for it."""

    model: str
    format: str
    runtime: str
    device: str
    precision: str
    batch: int
    status: Status = Status.OK  # every status but ok carries a message
    message: str = ""
    precision_used: str | None = None
    timed_region: str = ""
    threads: int | None = None
    stats: Stats | None = None
    samples_ms: list[float] = field(default_factory=list)
    device_stats: Stats | None = None  # CUDA-event GPU time, where the stream is visible
    own_stats: Stats | None = None  # each call on the runtime's own clock (own_clock names it), where it has one
    own_clock: str | None = None
    ms_per_image: float | None = None  # median / (batch x requests_in_flight): one image's cost
    throughput: float | None = None
    items_per_call: int | None = None
    window_seconds: float | None = None
    median_ci_ms: list[float] | None = None  # 95 % confidence interval of the median (stats["median"])
    stop_reason: str = ""  # what ended the timed window: the interval reached its target, or a cap
    warmup_iters: int | None = None
    warmup_seconds: float | None = None
    parity_seconds: float | None = None  # checking the parity images (and --dataset) after the timed window
    requests_in_flight: int = 1  # > 1: OpenVINO throughput mode; each sample is still one call on `batch`
    batch_shape: str | None = None  # "static": built/compiled for this batch; "dynamic": a batch range
    first_inference_ms: float | None = None
    load_seconds: float | None = None
    memory: MemoryReport | None = None  # figures in MB, with the source of each
    artifact: ArtifactRecord | None = None  # None: the in-memory PyTorch module
    parity: Parity | None = None
    parity_reference: str | None = None  # what parity compared against, e.g. "pytorch-fp32"
    runtime_info: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    weights: str = ""  # which weights the model ran with: random (seed N), pretrained, checkpoint PATH (full/partial)
    triage: dict[str, Any] | None = None  # compare --triage: deploybench.triage.Triage.to_dict() of a failing row
    utilization: dict[str, Any] | None = None  # GPU rows: achieved TFLOP/s and share of the dense peak
    gflops_per_s: float | None = None  # the model's FLOPs per image x images per second

    def __post_init__(self) -> None:
        self.status = Status(self.status)  # "crashed" and Status.CRASHED are one status

    @property
    def key(self) -> CellKey:
        return CellKey(self.model, self.format, self.runtime, self.device, self.precision, self.batch)

    @property
    def parity_verdict(self) -> str | None:
        return self.parity.verdict if self.parity else None

    @property
    def peak_rss_mb(self) -> float | None:
        return self.memory.peak_rss_mb if self.memory else None

    @property
    def peak_device_mb(self) -> float | None:
        return self.memory.peak_device_mb if self.memory else None

    @property
    def artifact_mb(self) -> float | None:
        return self.artifact.size_mb if self.artifact else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: typed parts as the objects they were decoded from (schema version 1)."""
        data = asdict(self)
        data["status"] = Status(self.status).value  # also a status assigned as its text
        data["memory"] = self.memory.to_dict() if self.memory else {}
        data["artifact"] = self.artifact.to_dict() if self.artifact else {}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Row:
        """A row as deploybench wrote it; a missing or mistyped key field, or an unknown status, is refused."""
        if not isinstance(data, dict):
            raise ResultsError(f"a row is a {type(data).__name__}, not an object")
        for name, kind in KEY_FIELDS.items():
            value = data.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ResultsError(f"a row has {name} {value!r}; every row names its cell with {', '.join(KEY_FIELDS)}")
        status = data.get("status", Status.OK.value)
        if status not in STATUSES:
            raise ResultsError(
                f"row {_cell_key(data)} has status {status!r}, which deploybench never writes "
                f"(valid: {', '.join(STATUSES)})"
            )
        known = {f.name for f in fields(cls)}
        row = cls(**{k: v for k, v in data.items() if k in known})
        # Decoded once, here: every reader gets objects, never the raw keys.
        row.stats = Stats.from_dict(data["stats"]) if data.get("stats") else None
        row.device_stats = Stats.from_dict(data["device_stats"]) if data.get("device_stats") else None
        row.own_stats = Stats.from_dict(data["own_stats"]) if data.get("own_stats") else None
        if (
            row.stats is not None
            and isinstance(row.requests_in_flight, int)
            and row.requests_in_flight > 1
            and row.batch
        ):
            # Files written when ms/img was median / batch for overlapping requests too: one image's cost.
            row.ms_per_image = per_image_ms(row.stats.median, row.batch, row.requests_in_flight)
        row.memory = MemoryReport.from_dict(data["memory"]) if data.get("memory") else None
        row.artifact = ArtifactRecord.from_dict(data["artifact"]) if data.get("artifact") else None
        row.parity = None
        if data.get("parity"):
            from deploybench.parity import Parity

            row.parity = Parity.from_dict(data["parity"])
        return row


def _cell_key(data: dict[str, Any]) -> str:
    return "|".join(str(data.get(name)) for name in KEY_FIELDS)


@dataclass
class Results:
    """A run: its configuration, the machine it ran on, and its rows."""

    config: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    models: dict[str, ModelFacts] = field(default_factory=dict)  # by model name: parameters, MACs, input
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "created": self.created,
            "config": self.config,
            "environment": self.environment,
            "models": {name: f.to_dict() for name, f in self.models.items()},
            "rows": [r.to_dict() for r in self.rows],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Results:
        """Validate and decode a results document (raises ResultsError saying what is wrong)."""
        if not isinstance(data, dict) or "schema_version" not in data or not isinstance(data.get("rows"), list):
            raise ResultsError(f"not a deploybench results file (it has no schema_version and rows list); {WHERE_FROM}")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ResultsError(
                f"results schema version {version!r} is not supported (this deploybench reads "
                f"version {SCHEMA_VERSION}); re-run the comparison with this version"
            )
        created = data["created"]
        models = {name: ModelFacts.from_dict(facts) for name, facts in (data.get("models") or {}).items()}
        return cls(
            config=data.get("config", {}),
            environment=data.get("environment", {}),
            rows=[Row.from_dict(r) for r in data["rows"]],
            models=models,
            created=created,
            schema_version=version,
        )

    @classmethod
    def from_json(cls, text: str) -> Results:
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, path: Path) -> Results:
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise ResultsError(f"cannot read results file {path} ({exc.strerror}); check the path") from exc
        except ValueError as exc:
            raise ResultsError(f"{path} is not a results JSON document ({exc}); {WHERE_FROM}") from exc
        try:
            return cls.from_dict(data)
        except ResultsError as exc:
            raise ResultsError(f"{path}: {exc}") from exc
        except (KeyError, TypeError) as exc:  # a missing field or a row of the wrong shape
            raise ResultsError(
                f"{path} is not a complete results document ({type(exc).__name__}: {exc}); {WHERE_FROM}"
            ) from exc

    def save(self, path: Path) -> None:
        """Atomic: a reader (or a crash) never sees a half-written document."""
        write_json_atomic(Path(path), self.to_dict())

    def upsert(self, row: Row) -> None:
        """Add a row, replacing an earlier row for the same cell (resume, retries)."""
        self.rows = [r for r in self.rows if r.key != row.key] + [row]
