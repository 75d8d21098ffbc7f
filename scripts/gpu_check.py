#!/usr/bin/env python3
"""The one command for a machine with an NVIDIA GPU: `make gpu-check`.

Steps, each ok, skipped (with the reason) or failed:

1. wheels  install optional wheels brought along (onnxruntime-gpu, openvino, ultralytics, ...)
           from --wheels DIR, offline (pip --no-index --no-deps --target OUT/site); a wheel split
           into parts (NAME.whl.part-aa, NAME.whl.part-ab, ... as `split` names them) is joined first;
2. device  print the GPU, driver, CUDA and library versions;
3. pytest  `pytest -m "gpu or tensorrt"`;
4. compare `deploybench compare --target auto --models resnet50,vit_b16,yolov8n --quick`, leaving
           out models whose source library is missing (yolov8n without ultralytics);

then a summary table (steps, and one line per measured row: ms/img, img/s, TFLOP/s, % of dense
peak, energy per image, throttling, parity, trtexec ratio, nodes ONNX Runtime left on the CPU),
printed last and written to OUT/gpu-check.md. Works offline. Without an NVIDIA GPU it says
"no NVIDIA GPU", runs the GPU tests (which skip) and exits 0. Exit 1 when a step failed.
The nightly GPU job runs this script as its smoke step.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = "resnet50,vit_b16,yolov8n"
NO_GPU = "no NVIDIA GPU"
# Models whose source library is optional, by the package that brings it.
MODEL_SOURCES = {"yolov8n": "ultralytics"}
PART = re.compile(r"^(?P<wheel>.+\.whl)\.part-?\w+$")

# Run in the environment the later steps get (PYTHONPATH with the installed wheels), as JSON.
PROBE = r"""
import importlib.util, json
from deploybench.env import gpu_info, library_versions
info = {"gpus": gpu_info(), "libraries": library_versions(), "torch_cuda": None, "torch_gpu": None,
        "modules": {name: importlib.util.find_spec(name) is not None for name in %(modules)r}}
try:
    import torch
    info["torch_cuda"] = torch.version.cuda
    if torch.cuda.is_available():
        info["torch_gpu"] = torch.cuda.get_device_name(0)
except ImportError:
    pass
try:
    import onnxruntime
    info["onnxruntime_providers"] = onnxruntime.get_available_providers()
except ImportError:
    info["onnxruntime_providers"] = None
print(json.dumps(info))
"""


@dataclass
class Step:
    name: str
    status: str  # ok | skipped | failed
    detail: str


def join_split_wheels(folder: Path, into: Path) -> list[Path]:
    """Wheels in ``folder``, with ``NAME.whl.part-*`` pieces concatenated (in name order) into ``into``."""
    wheels = sorted(folder.glob("*.whl"))
    parts: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        match = PART.match(path.name)
        if match:
            parts.setdefault(match.group("wheel"), []).append(path)
    into.mkdir(parents=True, exist_ok=True)
    for name, pieces in parts.items():
        joined = into / name
        with open(joined, "wb") as out:
            for piece in pieces:
                out.write(piece.read_bytes())
        wheels.append(joined)
    return wheels


def install_wheels(folder: Path | None, site: Path, env: dict[str, str]) -> Step:
    if folder is None:
        return Step("wheels", "skipped", "no --wheels folder given; using what is installed")
    if not folder.is_dir():
        return Step("wheels", "failed", f"--wheels {folder} is not a folder")
    wheels = join_split_wheels(folder, site.parent / "joined-wheels")
    if not wheels:
        return Step("wheels", "skipped", f"no .whl files in {folder}")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--target",
            str(site),
            *map(str, wheels),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode != 0:
        return Step("wheels", "failed", (done.stderr.strip().splitlines() or ["pip failed"])[-1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH", "")]))
    return Step("wheels", "ok", "installed " + ", ".join(w.name.split("-")[0] for w in wheels) + f" into {site}")


def probe(env: dict[str, str]) -> dict:
    modules = sorted(set(MODEL_SOURCES.values()))
    done = subprocess.run(
        [sys.executable, "-c", PROBE % {"modules": modules}], capture_output=True, text=True, env=env, cwd=ROOT
    )
    if done.returncode != 0:
        raise SystemExit(
            f"error: cannot import deploybench here ({done.stderr.strip().splitlines()[-1:]}); "
            "install the project (pip install --no-deps --no-index -e .) or put it on PYTHONPATH"
        )
    return json.loads(done.stdout)


def describe_device(info: dict) -> tuple[Step, bool]:
    gpus = info["gpus"]
    has_gpu = bool(gpus) or bool(info["torch_gpu"])
    libraries = {k: v for k, v in info["libraries"].items() if v}
    lines = [
        f"torch CUDA build: {info['torch_cuda'] or 'none'}; torch sees: {info['torch_gpu'] or 'no GPU'}",
        "libraries: " + ", ".join(f"{k} {v}" for k, v in libraries.items()),
        f"onnxruntime providers: {', '.join(info.get('onnxruntime_providers') or ['not installed'])}",
    ]
    for gpu in gpus:
        lines.insert(
            0,
            f"GPU {gpu['index']}: {gpu['name']} (sm {gpu['compute_capability']}, {gpu['memory_mb']} MB), "
            f"driver {gpu['driver']}, CUDA driver {gpu['cuda_driver']}, "
            f"SM clock {gpu['sm_clock_mhz']}/{gpu['sm_clock_max_mhz']} MHz",
        )
    if not has_gpu:
        lines.insert(0, f"{NO_GPU}: NVML lists no GPU and torch sees none")
    for line in lines:
        print(f"gpu-check: {line}", flush=True)
    return Step("device", "ok" if has_gpu else "skipped", lines[0]), has_gpu


def run_pytest(env: dict[str, str], tests: str, out: Path) -> Step:
    log = out / "pytest.log"
    command = [sys.executable, "-m", "pytest", "-m", "gpu or tensorrt", "-q", "-rs", "-p", "no:cacheprovider", tests]
    with open(log, "w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    text = log.read_text()
    summary = (re.findall(r"^=*\s*(\d+ (?:passed|failed|skipped|deselected|error).*?)\s*=*$", text, re.M) or ["?"])[-1]
    if "No module named pytest" in text:
        return Step("pytest", "skipped", "pytest is not installed here")
    if done.returncode == 5 or (done.returncode == 0 and "passed" not in summary and "failed" not in summary):
        return Step("pytest", "skipped", f"GPU tests skipped or none selected ({summary}); see {log}")
    return Step("pytest", "ok" if done.returncode == 0 else "failed", f"{summary}; see {log}")


def runnable_models(models: str, info: dict) -> tuple[list[str], list[str]]:
    keep, reasons = [], []
    for model in models.split(","):
        needs = MODEL_SOURCES.get(model)
        if needs and not info["modules"].get(needs):
            reasons.append(f"{model} needs {needs} (bring its wheel with --wheels)")
        else:
            keep.append(model)
    return keep, reasons


def run_compare(env: dict[str, str], models: list[str], out: Path, extra: list[str]) -> Step:
    folder = out / "compare"
    command = [
        sys.executable,
        "-m",
        "deploybench",
        "compare",
        "--target",
        "auto",
        "--models",
        ",".join(models),
        "--quick",
        "--out",
        str(folder),
        *extra,
    ]
    print(f"gpu-check: {' '.join(command[2:])}", flush=True)
    with open(out / "compare.log", "w") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if not (folder / "results.json").is_file():
        return Step("compare", "failed", f"exit {done.returncode}, no results; see {out / 'compare.log'}")
    if done.returncode != 0:
        return Step("compare", "failed", f"exit {done.returncode}: some cells failed or parity failed; see {folder}")
    return Step("compare", "ok", f"results in {folder}")


def _fmt(value: object, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def row_lines(results_file: Path) -> list[list[str]]:
    """One summary line per row of a results.json."""
    if not results_file.is_file():
        return []
    lines = []
    for row in json.loads(results_file.read_text()).get("rows", []):
        util, info = row.get("utilization") or {}, row.get("runtime_info") or {}
        nvml, cross, placement = info.get("nvml") or {}, info.get("cross_check") or {}, info.get("node_placement") or {}
        throttled = [w for w in row.get("warnings", []) if "throttled" in w or "clocked down" in w]
        lines.append(
            [
                row["model"],
                row["runtime"],
                row.get("precision_used") or row["precision"],
                str(row["batch"]),
                row["status"],
                _fmt(row.get("ms_per_image"), ".4f"),
                _fmt(row.get("throughput"), ",.1f"),
                _fmt(util.get("achieved_tflops"), ".2f"),
                _fmt(util.get("share_of_peak"), ".1%"),
                _fmt(nvml.get("energy_per_image_mj"), ".2f"),
                "yes" if throttled else "-",
                (row.get("parity") or {}).get("verdict", "-"),
                _fmt(cross.get("ratio_of_medians"), ".3f"),
                str(len(placement["cpu_nodes"])) if "cpu_nodes" in placement else "-",
            ]
        )
    return lines


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    text = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    text += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(text)


ROW_HEADERS = [
    "model",
    "runtime",
    "precision",
    "batch",
    "status",
    "ms/img",
    "img/s",
    "TFLOP/s",
    "% peak",
    "mJ/img",
    "throttled",
    "parity",
    "vs trtexec",
    "CPU nodes",
]


def summary(steps: list[Step], out: Path) -> str:
    parts = [
        "# deploybench GPU check",
        "",
        markdown(["step", "status", "detail"], [[s.name, s.status, s.detail] for s in steps]),
    ]
    rows = row_lines(out / "compare" / "results.json")
    if rows:
        parts += ["", markdown(ROW_HEADERS, rows)]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-check-out"), help="output folder")
    parser.add_argument("--wheels", type=Path, default=None, help="folder of wheels to install offline first")
    parser.add_argument("--models", default=MODELS, help=f"models to compare (default {MODELS})")
    parser.add_argument("--tests", default="tests", help="where pytest looks (default tests)")
    parser.add_argument("--compare-arg", action="append", default=[], help="extra argument for compare (repeatable)")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))

    steps = [install_wheels(args.wheels, out / "site", env)]
    info = probe(env)
    device, has_gpu = describe_device(info)
    steps += [device, run_pytest(env, args.tests, out)]
    if not has_gpu:
        steps.append(Step("compare", "skipped", f"{NO_GPU}: nothing to measure on a GPU"))
    else:
        models, left_out = runnable_models(args.models, info)
        step = (
            run_compare(env, models, out, args.compare_arg)
            if models
            else Step("compare", "skipped", "no model can run here")
        )
        if left_out:
            step.detail += "; left out: " + "; ".join(left_out)
        steps.append(step)

    text = summary(steps, out)
    (out / "gpu-check.md").write_text(text)
    print(text)
    return 1 if any(step.status == "failed" for step in steps) else 0


if __name__ == "__main__":
    sys.exit(main())
