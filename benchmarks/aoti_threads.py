"""Why an AOTInductor row could run many times slower than eager (issue 16, item 4).

Inductor writes ``#pragma omp parallel num_threads(N)`` into every CPU kernel, N being
torch's thread count at export, whenever that count differs from ``os.cpu_count()``. The
package then runs N threads whatever the runtime's ``--threads`` says. This script exports
one model twice while torch uses ``--export-threads`` threads (by default four times the
cores): once with Inductor's defaults (the old export) and once with deploybench's
``INDUCTOR_CONFIGS`` (dynamic threads). It lists the parallel pragmas of each package and
times both, and PyTorch eager, through deploybench's own runtime and harness at
``--threads``, in alternating rounds.

    python benchmarks/aoti_threads.py [--model test_efficientnet] [--threads 2] [--rounds 3] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import zipfile
from pathlib import Path

from deploybench import registry
from deploybench.artifact import Artifact
from deploybench.cache import ArtifactCache
from deploybench.exporters import aoti
from deploybench.exporters.base import ExportOptions
from deploybench.harness import MeasurePolicy, measure
from deploybench.inputs import example_batch
from deploybench.models import resolve
from deploybench.runtimes.base import RuntimeOptions

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_block import publish


def parallel_pragmas(artifact: Artifact) -> list[str]:
    with zipfile.ZipFile(artifact.file) as package:
        code = "".join(package.read(n).decode(errors="ignore") for n in package.namelist() if n.endswith(".cpp"))
    return sorted(set(re.findall(r"#pragma omp parallel[^\n]*", code)))


def export(model: str, export_threads: int, configs: dict, cache: ArtifactCache) -> Artifact:
    import torch

    saved, before = dict(aoti.INDUCTOR_CONFIGS), torch.get_num_threads()
    aoti.INDUCTOR_CONFIGS.clear()
    aoti.INDUCTOR_CONFIGS.update(configs)
    torch.set_num_threads(export_threads)
    try:
        artifact, _ = cache.get_or_export(registry.exporters.get("aoti")(), resolve(model), ExportOptions())
    finally:
        torch.set_num_threads(before)
        aoti.INDUCTOR_CONFIGS.clear()
        aoti.INDUCTOR_CONFIGS.update(saved)
    return artifact


def median_ms(runtime_name: str, artifact: Artifact, threads: int, batch: int) -> float:
    options = RuntimeOptions(threads=threads)
    with registry.runtimes.get(runtime_name)(options).load(artifact) as runtime:
        feeds = runtime.prepare(example_batch(artifact.model.input, batch))
        return measure(runtime, feeds, batch, MeasurePolicy(min_seconds=2.0, min_iters=20)).stats.median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="test_efficientnet")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads the runtimes run with")
    parser.add_argument("--export-threads", type=int, default=4 * (os.cpu_count() or 1))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    spec = resolve(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        cache = ArtifactCache(Path(tmp))
        candidates = {
            "eager": ("torch", Artifact.from_module(spec)),
            "aoti, Inductor defaults": ("aoti", export(args.model, args.export_threads, {}, cache)),
            "aoti, deploybench's INDUCTOR_CONFIGS": (
                "aoti",
                export(args.model, args.export_threads, dict(aoti.INDUCTOR_CONFIGS), cache),
            ),
        }
        rounds: dict[str, list[float]] = {label: [] for label in candidates}
        for _ in range(args.rounds):  # alternate, so a change in the machine's load hits every candidate
            for label, (runtime, artifact) in candidates.items():
                rounds[label].append(median_ms(runtime, artifact, args.threads, args.batch))
        pragmas = {
            label: parallel_pragmas(artifact) for label, (runtime, artifact) in candidates.items() if runtime == "aoti"
        }

    eager = statistics.median(rounds["eager"])
    lines = [
        f"Model {args.model}, batch {args.batch}, exported while torch used {args.export_threads} threads, run with "
        f"{args.threads} threads on a machine with {os.cpu_count()} logical cores (load average "
        f"{os.getloadavg()[0]:.1f} at the end); {args.rounds} alternating rounds, medians in ms per call.",
        "",
        "| candidate | parallel pragmas in the package | median ms | vs eager | rounds |",
        "|---|---|---|---|---|",
    ]
    for label, values in rounds.items():
        median = statistics.median(values)
        lines.append(
            f"| {label} | {', '.join(f'`{p}`' for p in pragmas.get(label, [])) or '-'} | {median:.3f} | "
            f"{median / eager:.2f}x | {', '.join(f'{v:.3f}' for v in values)} |"
        )
    text = "\n".join(lines) + "\n"
    publish(text, args.out)


if __name__ == "__main__":
    main()
