#!/usr/bin/env python3
"""Build the Docker image where a Docker engine runs; skip, with the reason, where none does.

    python scripts/docker_build.py [--tag deploybench:ci] [--out docker-build-out]

Where `docker info` answers: `docker build` the repository's Dockerfile (whose own last step
imports TensorRT, ONNX Runtime's CUDA build and OpenVINO, and runs `deploybench --version`),
then record what the image holds: the base image's digest and `pip freeze`, in OUT.
Where there is no docker client, or its engine does not answer: print "skipped: ..." and exit 0.
Exit 1 when the build fails.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def engine_problem(docker: str | None) -> str | None:
    """Why no image can be built here, or None when a Docker engine answers."""
    if docker is None:
        return "no docker client on PATH"
    try:
        done = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker info did not answer ({exc})"
    if done.returncode != 0 or not done.stdout.strip():
        detail = (done.stderr.strip().splitlines() or ["no server version"])[-1]
        return f"no Docker engine answers ({detail})"
    return None


def base_image(dockerfile: Path) -> str:
    """The image the Dockerfile's FROM names (tag and digest as written)."""
    for line in dockerfile.read_text().splitlines():
        if line.strip().upper().startswith("FROM "):
            return line.split()[1]
    raise SystemExit(f"error: {dockerfile} has no FROM line")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default="deploybench:ci")
    parser.add_argument("--out", type=Path, default=Path("docker-build-out"))
    args = parser.parse_args(argv)
    docker = shutil.which("docker")
    problem = engine_problem(docker)
    if problem:
        print(f"docker-build: skipped: {problem}; the image is built where a Docker engine runs (CI's docker job)")
        return 0
    assert docker is not None
    print(f"docker-build: docker build -t {args.tag} {ROOT}", flush=True)
    if subprocess.run([docker, "build", "-t", args.tag, str(ROOT)]).returncode != 0:
        print("docker-build: failed: docker build did not finish (see its output above)")
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    base = base_image(ROOT / "Dockerfile")
    digest = subprocess.run(
        [docker, "image", "inspect", "--format", "{{index .RepoDigests 0}}", base], capture_output=True, text=True
    )
    (args.out / "base-image.txt").write_text((digest.stdout.strip() or base) + "\n")
    freeze = subprocess.run(
        [docker, "run", "--rm", "--entrypoint", "python", args.tag, "-m", "pip", "freeze"],
        capture_output=True,
        text=True,
    )
    (args.out / "pip-freeze.txt").write_text(freeze.stdout)
    print(f"docker-build: built {args.tag} from {base}; versions in {args.out}")
    return 0 if freeze.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
