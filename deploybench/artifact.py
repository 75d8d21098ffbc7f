"""Artifacts: an exported model on disk plus the manifest that describes it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deploybench.errors import CacheError, UsageError
from deploybench.files import file_sha256, write_json_atomic
from deploybench.models import ModelSpec

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = 1


@dataclass(frozen=True)
class BatchRange:
    """Batch sizes an artifact accepts: min, the one it is tuned for, max."""

    min: int = 1
    opt: int = 1
    max: int = 64

    @classmethod
    def parse(cls, text: str) -> BatchRange:
        """``8`` (static), ``1:64`` (min:max) or ``1:8:64`` (min:opt:max)."""
        try:
            parts = [int(p) for p in text.split(":")]
        except ValueError:
            raise UsageError(f"malformed batch range {text!r}; write N, MIN:MAX or MIN:OPT:MAX, e.g. 1:8:64") from None
        if len(parts) == 1:
            parts = parts * 3
        elif len(parts) == 2:
            parts = [parts[0], parts[0], parts[1]]
        if len(parts) != 3 or not (1 <= parts[0] <= parts[1] <= parts[2]):
            raise UsageError(f"malformed batch range {text!r}; need 1 <= MIN <= OPT <= MAX, e.g. 1:8:64")
        return cls(*parts)

    @property
    def dynamic(self) -> bool:
        return self.min != self.max

    def __contains__(self, batch: int) -> bool:
        return self.min <= batch <= self.max


@dataclass
class TensorInfo:
    name: str
    shape: list[Any]  # "batch" marks the dynamic axis
    dtype: str = "float32"


@dataclass
class Artifact:
    """A deployable model: files in one folder, described by ``manifest``."""

    format: str
    path: Path | None  # folder; None for the in-memory PyTorch module
    main_file: str
    precision: str = "fp32"
    device: str = "cpu"
    inputs: list[TensorInfo] = field(default_factory=list)
    outputs: list[TensorInfo] = field(default_factory=list)
    batch: BatchRange = field(default_factory=BatchRange)
    manifest: dict[str, Any] = field(default_factory=dict)
    model: ModelSpec | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_module(cls, model: ModelSpec, precision: str = "fp32", device: str = "cpu") -> Artifact:
        """The PyTorch module itself, for the eager and compile runtimes."""
        return cls(
            format="pytorch",
            path=None,
            main_file="",
            precision=precision,
            device=device,
            inputs=[TensorInfo(model.input.name, ["batch", *model.input.shape])],
            batch=BatchRange(1, 1, 1 << 16),
            model=model,
        )

    @classmethod
    def from_onnx_file(cls, model: ModelSpec) -> Artifact:
        """A model's own ONNX file where it lies (runtime-only models; nothing is copied)."""
        assert model.onnx_path is not None, "only ONNX-file models have one"
        fixed = model.fixed_batch
        return cls(
            format="onnx",
            path=model.onnx_path.parent,
            main_file=model.onnx_path.name,
            inputs=[TensorInfo(spec.name, ["batch", *spec.shape], spec.dtype) for spec in model.inputs],
            batch=BatchRange(fixed, fixed, fixed) if fixed else BatchRange(1, 1, 1 << 16),
            model=model,
        )

    @property
    def file(self) -> Path:
        if self.path is None:
            raise CacheError(f"the {self.format} artifact lives in memory and has no file")
        return self.path / self.main_file

    def size_bytes(self) -> int:
        return sum(entry["size"] for entry in self.manifest.get("files", {}).values())

    def record_files(self) -> None:
        """Put every file's size and content hash into the manifest."""
        assert self.path is not None
        self.manifest["files"] = {
            str(p.relative_to(self.path)): {"size": p.stat().st_size, "sha256": file_sha256(p)}
            for p in sorted(self.path.rglob("*"))
            if p.is_file() and p.name != MANIFEST
        }

    def integrity_problem(self) -> str | None:
        """Why the files on disk differ from the manifest, or None if they match."""
        assert self.path is not None
        for name, entry in self.manifest.get("files", {}).items():
            file = self.path / name
            if not file.is_file():
                return f"{name} is missing"
            if file.stat().st_size != entry["size"]:
                return f"{name} is {file.stat().st_size} bytes, the manifest says {entry['size']}"
            if file_sha256(file) != entry["sha256"]:
                return f"{name} does not match its content hash"
        return None

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k not in ("model", "path")}
        data["schema"] = MANIFEST_SCHEMA
        return data

    def save(self) -> None:
        assert self.path is not None
        write_json_atomic(self.path / MANIFEST, self.to_dict())

    @classmethod
    def load(cls, folder: Path) -> Artifact:
        """Read an artifact folder's manifest (the files are checked by ``integrity_problem``)."""
        try:
            data = json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError) as exc:
            raise CacheError(f"{folder} has no readable {MANIFEST} ({exc}); export again with --force") from exc
        data.pop("schema", None)
        return cls(
            format=data["format"],
            path=folder,
            main_file=data["main_file"],
            precision=data["precision"],
            device=data["device"],
            inputs=[TensorInfo(**t) for t in data["inputs"]],
            outputs=[TensorInfo(**t) for t in data["outputs"]],
            batch=BatchRange(**data["batch"]),
            manifest=data["manifest"],
        )
