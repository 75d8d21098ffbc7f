"""CI files, the Dockerfile and scripts/nightly.sh: parsed and checked here (no Docker engine or GitHub
runner in this workplace), and the nightly script run end to end on the CPU."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is in the dev extra")

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"


def load(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the bare key `on` as the boolean True.
    data["on"] = data.pop(True, data.get("on"))
    return data


def run_lines(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_nightly_gpu_workflow() -> None:
    workflow = load("nightly-gpu.yml")
    assert workflow["on"]["schedule"][0]["cron"].count(" ") == 4
    assert "workflow_dispatch" in workflow["on"]
    (job,) = workflow["jobs"].values()
    assert "self-hosted" in job["runs-on"] and "gpu" in job["runs-on"]
    script = run_lines(job)
    assert "docker build" in script and "docker pull" in script
    assert "--gpus all" in script and "scripts/nightly.sh" in script
    assert "GITHUB_STEP_SUMMARY" in script and "HISTORY=" in script
    upload = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"  # results are kept even when the gate fails the job
    assert {"nightly-out/results.json", "nightly-out/report.html"} <= set(upload["with"]["path"].split())


def test_cpu_workflow_runs_the_readme_test_command() -> None:
    workflow = load("ci.yml")
    assert {"push", "pull_request"} <= set(workflow["on"])
    (job,) = workflow["jobs"].values()
    assert "make test" in run_lines(job)
    assert re.search(r"^test:", (ROOT / "Makefile").read_text(), re.M)


def test_every_script_a_workflow_names_exists_and_is_executable() -> None:
    for name in ("nightly-gpu.yml", "ci.yml"):
        for script in re.findall(r"scripts/[\w.-]+", (WORKFLOWS / name).read_text()):
            path = ROOT / script
            assert path.is_file() and os.access(path, os.X_OK), script
    subprocess.run(["bash", "-n", str(ROOT / "scripts" / "nightly.sh")], check=True)


def test_dockerfile_is_pinned_and_runs_deploybench() -> None:
    text = (ROOT / "Dockerfile").read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    base = next(line for line in instructions if line.startswith("FROM "))
    match = re.fullmatch(r"FROM nvcr\.io/nvidia/pytorch:(\d\d)\.(\d\d)-py3", base)
    assert match, base  # NVIDIA's PyTorch container, pinned to a YY.MM release, never `latest`
    assert 1 <= int(match.group(2)) <= 12
    assert re.search(r'pip install "\.\[gpu,onnx,openvino,yolo\]"', text)
    assert 'ENTRYPOINT ["deploybench"]' in instructions
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv"} <= set(ignored)


@pytest.mark.slow
def test_nightly_script_end_to_end_on_the_cpu(tmp_path: Path) -> None:
    """Two nights on the CPU target: the first has no baseline, the second is gated against it."""
    deploybench = shutil.which("deploybench", path=str(Path(sys.executable).parent)) or "deploybench"
    env = dict(os.environ, TARGET="cpu", MODELS="test_resnet", RUNTIMES="onnxruntime", BATCHES="1", QUICK="1",
               HISTORY=str(tmp_path / "history.sqlite"), CACHE=str(tmp_path / "cache"), DEPLOYBENCH=deploybench)
    verdicts = []
    for night in (1, 2):
        out = tmp_path / f"night{night}"
        summary = tmp_path / f"summary{night}.md"
        done = subprocess.run(["bash", str(ROOT / "scripts" / "nightly.sh")], cwd=tmp_path, capture_output=True,
                              text=True, env=dict(env, OUT=str(out), GITHUB_STEP_SUMMARY=str(summary)), timeout=600)
        verdict = (out / "verdict.txt").read_text().strip()
        verdicts.append(verdict)
        # The exit status and the verdict agree; the second night's verdict depends on this machine's noise.
        assert (done.returncode, verdict) in ((0, "NO-BASELINE"), (0, "PASS"), (1, "FAIL")), done.stderr[-2000:]
        for name in ("results.json", "results.md", "report.html", "regress.txt"):
            assert (out / name).stat().st_size > 0, name
        assert summary.read_text().startswith(f"# deploybench nightly (cpu): {verdict}")
    assert verdicts[0] == "NO-BASELINE" and verdicts[1] in ("PASS", "FAIL")
    assert "Regression check" in (tmp_path / "summary2.md").read_text()
