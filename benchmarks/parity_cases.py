"""What each broken and faithful candidate gets from the comparator, per task and precision.

Builds the references the parity suite uses (tests/test_parity_suite.py: a timm classifier,
a YOLO detector and a two-output model, random weights with BatchNorm statistics
re-estimated on bundled photos, parity inputs from other photo crops), applies every case,
and writes the verdicts (how many of the seeds each verdict got) into the README between
the parity-cases markers. Run: python benchmarks/parity_cases.py [--seeds N]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import test_parity_suite as suite
from readme_block import publish

from deploybench.parity import compare


def _cell(verdicts: Counter) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(verdicts.items())) or "-"


def table(seeds: tuple[int, ...]) -> str:
    cases = suite.build_cases(seeds)
    lines = [
        "| candidate | task | " + " | ".join(suite.PRECISIONS) + " |",
        "|---|---|" + "---|" * len(suite.PRECISIONS),
    ]
    for name, (tasks, make) in suite.BROKEN.items():
        for task in tasks:
            cells = []
            for precision in suite.PRECISIONS:
                verdicts = Counter(
                    compare(ref, make(ref, precision, np.random.default_rng(seed)), kind, precision).verdict
                    for (t, seed), (kind, ref, _) in cases.items()
                    if t == task
                )
                cells.append(_cell(verdicts))
            lines.append(f"| broken: {name} | {task} | " + " | ".join(cells) + " |")
    for name, (precisions, make) in suite.FAITHFUL.items():
        for task in suite.TASKS:
            cells = []
            for precision in suite.PRECISIONS:
                if precision not in precisions:
                    cells.append("-")
                    continue
                verdicts = Counter(
                    compare(ref, make(ref, quantised), kind, precision).verdict
                    for (t, _), (kind, ref, quantised) in cases.items()
                    if t == task
                )
                cells.append(_cell(verdicts))
            lines.append(f"| faithful: {name} | {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + (
        f"\n\nEach cell counts the verdicts over {len(seeds)} seeds (`benchmarks/parity_cases.py`). "
        "The classifier's and detector's references use `--data-init` so that every break is "
        "visible; the detector is then chaotic (table above), and int8 weights change its "
        "class scores for real, which is why that faithful row fails and the test suite "
        "keeps int8 fake-quantisation to the small models."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    text = table(tuple(range(args.seeds)))
    publish(text, block="parity-cases")


if __name__ == "__main__":
    main()
