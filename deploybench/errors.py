"""One error hierarchy. Every message says what went wrong and what to do next."""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterable, Iterator
from pathlib import Path


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (libraries' run to pages), or its type name."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


class DeployBenchError(Exception):
    """Base of every error deploybench raises on purpose (user errors, exit code 2)."""

    exit_code = 2


class UnknownNameError(DeployBenchError):
    """A name (model, format, runtime, target) that no registry knows."""

    def __init__(self, kind: str, name: str, choices: Iterable[str], hint: str = "") -> None:
        self.kind, self.name, self.choices = kind, name, sorted(set(choices))
        close = difflib.get_close_matches(name, self.choices, n=3, cutoff=0.5)
        parts = [f"unknown {kind} {name!r}"]
        if close:
            parts.append(f"did you mean {', '.join(repr(c) for c in close)}?")
        if len(self.choices) <= 25:
            parts.append(f"valid: {', '.join(self.choices)}")
        if hint:
            parts.append(hint)
        super().__init__("; ".join(parts))


class ModelSpecError(DeployBenchError):
    """A model spec that cannot be resolved (malformed, missing file, factory failed)."""


class MissingDependencyError(DeployBenchError):
    """An optional library a plugin needs is not installed."""

    def __init__(self, what: str, package: str, extra: str | None = None) -> None:
        install = f"pip install 'deploybench[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"{what} needs the '{package}' package, which is not installed; run: {install}")
        self.package, self.extra = package, extra


class UnsupportedError(DeployBenchError):
    """A format/precision/device combination a plugin does not support."""


class ExportError(DeployBenchError):
    """The exporter or the check that loads its result back failed."""


class RuntimeLoadError(DeployBenchError):
    """A runtime could not load an artifact (missing, corrupt, wrong device)."""


class CacheError(DeployBenchError):
    """The artifact cache is unusable (unwritable folder, corrupted entry)."""


class ResultsError(DeployBenchError):
    """A results file that cannot be read (missing, malformed, incompatible schema)."""


class UsageError(DeployBenchError):
    """Malformed command-line input (batch lists, shapes, options)."""


class UserFileError(DeployBenchError):
    """A file the user named (image, ONNX model, weights, target) that its library could not read."""

    def __init__(self, what: str, path: Path | str, problem: str, hint: str) -> None:
        self.path = str(path)
        super().__init__(f"{what} {self.path} {problem}; {hint}")


@contextlib.contextmanager
def reading(what: str, path: Path | str, hint: str) -> Iterator[None]:
    """Turn whatever a library raises while reading ``path`` into one UserFileError naming the file.

    Libraries fail on a bad file in their own ways (PIL's UnidentifiedImageError, OSError for a
    truncated JPEG, protobuf's DecodeError, UnicodeDecodeError); the user needs the path either way.
    """
    try:
        yield
    except DeployBenchError:
        raise
    except Exception as exc:
        raise UserFileError(what, path, f"could not be read ({type(exc).__name__}: {first_line(exc)})", hint) from exc


class TriageError(DeployBenchError):
    """Precision triage cannot run: no artifact to triage, or no intermediate tensors to compare."""
