"""Targets: small TOML files naming the device, runtimes, precisions and batch sizes worth
running on a class of machine. Shipped ones live beside this module; ``--target-file``
reads a user's own."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploybench.errors import UnknownNameError, UsageError, UserFileError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

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

    @classmethod
    def from_toml(cls, path: Path) -> Target:
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
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
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


def parse_shard(text: str, env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``I/N`` with 1 <= I <= N; ``auto`` (or ``auto/N``) reads them from the scheduler running the job."""
    if text == "auto" or text.startswith("auto/"):
        return scheduler_shard(text, os.environ if env is None else env)
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise UsageError(f"malformed shard {text!r}; write I/N, e.g. 2/4, or auto") from None
    if not 1 <= index <= count:
        raise UsageError(f"malformed shard {text!r}; need 1 <= I <= N")
    return index, count


def scheduler_shard(text: str, env: Mapping[str, str]) -> tuple[int, int]:
    """The array index and count of a Slurm array task or a Kubernetes Indexed Job, as ``(I, N)``.

    Slurm: ``SLURM_ARRAY_TASK_ID`` counted from ``SLURM_ARRAY_TASK_MIN`` in steps of
    ``SLURM_ARRAY_TASK_STEP``, of
    ``SLURM_ARRAY_TASK_COUNT``. Kubernetes: ``JOB_COMPLETION_INDEX`` (from 0) of the N in
    ``auto/N``, since the pod is not told its job's completions.
    """
    given = text.partition("/")[2]
    if given and not given.isdigit():
        raise UsageError(f"malformed shard {text!r}; write auto or auto/N with N the number of shards")
    if "SLURM_ARRAY_TASK_ID" in env:
        try:
            task, first, count = (
                int(env[name]) for name in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT")
            )
        except (KeyError, ValueError):
            raise UsageError(
                "--shard auto found SLURM_ARRAY_TASK_ID without a numeric SLURM_ARRAY_TASK_MIN and "
                "SLURM_ARRAY_TASK_COUNT; submit with sbatch --array, or pass --shard I/N"
            ) from None
        step = int(env.get("SLURM_ARRAY_TASK_STEP") or 1)  # --array=0-6:2 runs tasks 0, 2, 4, 6
        if step < 1 or (task - first) % step:
            raise UsageError(
                f"--shard auto cannot place Slurm task {task} in an array from {first} by {step}; pass --shard I/N"
            )
        index = (task - first) // step + 1
    elif "JOB_COMPLETION_INDEX" in env:
        if not given:
            raise UsageError(
                "--shard auto found a Kubernetes JOB_COMPLETION_INDEX but no shard count; pass "
                "--shard auto/N with N the job's completions"
            )
        try:
            index, count = int(env["JOB_COMPLETION_INDEX"]) + 1, int(given)
        except ValueError:
            raise UsageError(
                f"--shard auto: JOB_COMPLETION_INDEX is {env['JOB_COMPLETION_INDEX']!r}, not a number; pass --shard I/N"
            ) from None
    else:
        raise UsageError(
            "--shard auto found no scheduler array index (SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX); "
            "pass --shard I/N, e.g. --shard ${{ matrix.shard }}/N in a GitHub Actions matrix"
        )
    if given and int(given) != count:
        raise UsageError(f"--shard {text} disagrees with the scheduler's {count} array tasks; pass --shard auto")
    if not 1 <= index <= count:
        raise UsageError(f"--shard auto read shard {index} of {count} from the scheduler; need 1 <= I <= N")
    return index, count
