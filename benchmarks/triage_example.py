"""The README's precision-triage example: export, then ``deploybench triage --fix``, output captured as printed.

Runs the CLI on the tiny precision-sensitive models of ``tests/precision_models.py`` in a
fresh cache and writes the commands with their real stdout as Markdown.

    python benchmarks/triage_example.py [--readme] [--out benchmarks/results/triage_example.md]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from readme_block import publish

EXAMPLES = {
    "onnx-fp16": ("precision_models:overflow_net", "onnx", "fp16"),
    "openvino-int8": ("precision_models:outlier_net", "openvino", "int8"),
}


def run(args: list[str], env: dict[str, str]) -> str:
    # The console script beside this interpreter: the command a user types.
    done = subprocess.run(
        [str(Path(sys.executable).parent / "deploybench"), *args], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", choices=sorted(EXAMPLES), default="onnx-fp16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="Also write the Markdown here.")
    parser.add_argument("--readme", action="store_true", help="Put it between the README's triage-example markers.")
    args = parser.parse_args()

    model, fmt, precision = EXAMPLES[args.example]
    with tempfile.TemporaryDirectory(prefix="deploybench-triage-example-") as cache:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "tests"), "DEPLOYBENCH_CACHE": cache}
        export = ["export", model, "--to", fmt, "--precision", precision]
        triage = ["triage", model, "--format", fmt, "--precision", precision, "--fix", "--threads", str(args.threads)]
        run(export, env)
        output = run(triage, env)
    text = "\n".join(
        [
            "```console",
            f"$ PYTHONPATH=tests deploybench {' '.join(export)}",
            f"$ PYTHONPATH=tests deploybench {' '.join(triage)}",
            output.rstrip(),
            "```",
        ]
    )
    publish(text, args.out, "triage-example" if args.readme else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
