"""Targets: small TOML files naming the device, runtimes, precisions and batch sizes worth
running on a class of machine. Shipped ones live beside this module; ``--target-file``
reads a user's own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deploybench.errors import UnknownNameError, UsageError, UserFileError

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

TARGET_DIR = Path(__file__).parent


@dataclass(frozen=True)
class Target:
    name: str
    device: str = "cpu"
    description: str = ""
    runtimes: tuple[str, ...] = ("torch", "torchscript", "onnxruntime", "openvino", "aoti")
    precisions: tuple[str, ...] = ("fp32",)
    batches: tuple[int, ...] = (1, 8)
    threads: int | None = None
    sample: tuple[str, ...] = ("rss",)  # what to sample during a run: rss, nvml, tegrastats
    requires_gpu: bool = False

    @classmethod
    def from_toml(cls, path: Path) -> "Target":
        try:
            text = path.read_text()
        except OSError as exc:
            raise UsageError(f"cannot read target file {path} ({exc.strerror})") from exc
        except UnicodeDecodeError as exc:  # a binary file passed by mistake
            raise UserFileError("target file", path, "is not text", "pass a TOML file like the shipped ones") from exc
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"target file {path} is not valid TOML ({exc})") from exc
        known = set(cls.__dataclass_fields__) - {"name"}
        unknown = set(data) - known - {"name"}
        if unknown:
            raise UsageError(f"target file {path} has unknown keys {sorted(unknown)}; valid: {sorted(known)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
        return cls(name=data.get("name", path.stem), **values)


def shipped_targets() -> list[str]:
    return sorted(p.stem for p in TARGET_DIR.glob("*.toml"))


def auto_target_name() -> str:
    """Pick a shipped target from the machine: the GPU's name, a Jetson, or the CPU."""
    from deploybench.env import gpu_info

    if Path("/etc/nv_tegra_release").exists():
        return "edge"
    for gpu in gpu_info():
        for name in ("h100", "a100"):
            if name in gpu["name"].lower():
                return name
        return "a100"  # the closest shipped datacenter profile
    return "cpu"


def load_target(name: str, file: str | None = None) -> Target:
    if file:
        return Target.from_toml(Path(file))
    if name == "auto":
        name = auto_target_name()
    path = TARGET_DIR / f"{name}.toml"
    if not path.is_file():
        raise UnknownNameError("target", name, [*shipped_targets(), "auto"], hint="or pass --target-file FILE.toml")
    return Target.from_toml(path)


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` with 1 <= I <= N."""
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise UsageError(f"malformed shard {text!r}; write I/N, e.g. 2/4") from None
    if not 1 <= index <= count:
        raise UsageError(f"malformed shard {text!r}; need 1 <= I <= N")
    return index, count
