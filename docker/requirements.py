"""Print deploybench's requirements and those of the named extras, one a line, read from setup.cfg.

The Docker image installs its dependencies from this list before it copies the source, so that
editing the source reuses the (large) dependency layer:

    python docker/requirements.py setup.cfg gpu onnx openvino yolo --drop onnxruntime

``--drop`` leaves packages out by name (the CPU build of ONNX Runtime, where onnxruntime-gpu
installs the same module). Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import configparser
import re
import sys


def name_of(requirement: str) -> str:
    """``onnxruntime-gpu>=1.18`` -> ``onnxruntime-gpu`` (normalised as PEP 503 does)."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    return re.sub(r"[-_.]+", "-", match.group(0)).lower() if match else requirement


def requirements(setup_cfg: str, extras: list[str], drop: list[str]) -> list[str]:
    config = configparser.ConfigParser()  # its interpolation expands setup.cfg's %(onnx)s references
    if not config.read(setup_cfg):
        sys.exit(f"cannot read {setup_cfg}")
    known = config["options.extras_require"]
    unknown = [extra for extra in extras if extra not in known]
    if unknown:
        sys.exit(f"unknown extras {unknown}; setup.cfg has {sorted(known)}")
    sections = [config["options"]["install_requires"], *(known[extra] for extra in extras)]
    lines = [line.strip() for section in sections for line in section.splitlines() if line.strip()]
    dropped = {name_of(name) for name in drop}
    return [line for line in dict.fromkeys(lines) if name_of(line) not in dropped]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("setup_cfg")
    parser.add_argument("extras", nargs="*")
    parser.add_argument("--drop", action="append", default=[], help="leave this package out (repeatable)")
    args = parser.parse_args()
    print("\n".join(requirements(args.setup_cfg, args.extras, args.drop)))


if __name__ == "__main__":
    main()
