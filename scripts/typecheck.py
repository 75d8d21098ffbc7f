"""mypy over deploybench/, exporters/ and runtimes/ as the one package they install as.

``exporters/`` and ``runtimes/`` are installed as ``deploybench.exporters`` and
``deploybench.runtimes`` (``package_dir`` in setup.cfg). An editable install maps them with an
import hook that mypy cannot follow, so this script lays the package out as the wheel does,
with symlinks in a temporary folder, runs mypy on it, and prints the findings with their
paths in this repository.

TensorRT's API is checked against ``tensorrt-stubs`` from PyPI, installed apart from the
libraries (``--stubs``, default ``.venv/typing-stubs``): beside them its ``tensorrt`` folder
would import as an empty package. Its 10.x releases carry a few lines Python cannot parse
(a parameter named ``in``, a required parameter after defaults); a copy is repaired here, and
the check fails if any other line stops mypy from reading the stubs.

    python scripts/typecheck.py [--stubs DIR]   (make lint runs it)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTALLED_AS = {"exporters": ROOT / "exporters", "runtimes": ROOT / "runtimes"}
STUB_PACKAGES = ("tensorrt", "tensorrt_bindings")


def repair_stubs(source: Path, into: Path) -> None:
    """Copy the TensorRT stubs, fixing the lines of theirs that are not valid Python."""
    for package in STUB_PACKAGES:
        if (source / package).is_dir():
            shutil.copytree(source / package, into / package)
    for stub in into.glob("tensorrt_bindings/*.pyi"):
        text = re.sub(r"(?<=[(,] )in(?=: )", "in_", stub.read_text())  # `in` is a keyword
        text = re.sub(r"(= None, \w+: \w+)\)", r"\1 = ...)", text)  # required after defaults
        stub.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stubs", type=Path, default=ROOT / ".venv" / "typing-stubs")
    args = parser.parse_args()
    if not (args.stubs / "tensorrt").is_dir():
        print(f"no tensorrt-stubs in {args.stubs}: pip install --no-deps --target {args.stubs} tensorrt-stubs")
        return 2
    with tempfile.TemporaryDirectory(prefix="deploybench-mypy-") as tmp:
        stubs = Path(tmp) / "stubs"
        repair_stubs(args.stubs.resolve(), stubs)
        package = Path(tmp) / "deploybench"
        package.mkdir()
        for entry in (ROOT / "deploybench").iterdir():
            if entry.name != "__pycache__":
                (package / entry.name).symlink_to(entry)
        for name, folder in INSTALLED_AS.items():
            (package / name).symlink_to(folder)
        search = [tmp, str(stubs)]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "mypy",
                "--config-file",
                str(ROOT / "setup.cfg"),
                "--cache-dir",
                str(ROOT / ".mypy_cache"),
                "-p",
                "deploybench",
            ],  # fmt: skip
            cwd=tmp,
            env={**os.environ, "MYPYPATH": os.pathsep.join(search)},
            capture_output=True,
            text=True,
        )
    output = done.stdout + done.stderr
    for name in INSTALLED_AS:  # deploybench/exporters/x.py is exporters/x.py here
        output = output.replace(f"deploybench/{name}/", f"{name}/")
    print(output, end="")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
