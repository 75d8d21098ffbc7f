"""CI files, the Dockerfile and scripts/nightly.sh: parsed and checked here (no Docker engine or GitHub
runner in this workplace); the nightly script's steps run against a stand-in deploybench, then end to end
on the CPU."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is in the dev extra")

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
NIGHTLY = ROOT / "scripts" / "nightly.sh"


def load(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the bare key `on` as the boolean True.
    data["on"] = data.pop(True, data.get("on"))
    return data


def run_lines(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def shell_commands(script: str) -> list[list[str]]:
    """The commands of a step's shell script as argument lists (continuation lines joined, comments dropped)."""
    joined = re.sub(r"\\\n\s*", " ", script)
    return [shlex.split(line, comments=True) for line in joined.splitlines() if shlex.split(line, comments=True)]


def docker_run_options(command: list[str]) -> dict[str, list[str]]:
    """`docker run` options that take a value, by option name (-e, -v, --user, ...)."""
    options: dict[str, list[str]] = {}
    for flag, value in zip(command, command[1:]):
        if flag in ("-e", "-v", "-w", "--user", "--entrypoint", "--ipc", "--gpus"):
            options.setdefault(flag, []).append(value)
    return options


def nightly_step(job: dict) -> dict:
    return next(step for step in job["steps"] if "scripts/nightly.sh" in step.get("run", ""))


def test_nightly_gpu_workflow_triggers_and_upload() -> None:
    workflow = load("nightly-gpu.yml")
    assert workflow["on"]["schedule"][0]["cron"].count(" ") == 4
    assert "workflow_dispatch" in workflow["on"]
    (job,) = workflow["jobs"].values()
    assert "self-hosted" in job["runs-on"] and "gpu" in job["runs-on"]
    assert "docker build" in run_lines(job) and "docker pull" in run_lines(job)
    upload = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"  # results are kept even when the gate fails the job
    assert {"nightly-out/results.json", "nightly-out/report.html"} <= set(upload["with"]["path"].split())


def test_nightly_gpu_runs_the_script_in_the_image_with_state_on_the_runner() -> None:
    (job,) = load("nightly-gpu.yml")["jobs"].values()
    (docker,) = [c for c in shell_commands(nightly_step(job)["run"]) if c[:2] == ["docker", "run"]]
    options = docker_run_options(docker)
    assert docker[-2:] == ["$IMAGE", "scripts/nightly.sh"] and options["--entrypoint"] == ["bash"]
    assert options["--gpus"] == ["all"] and "$STATE:/state" in options["-v"]
    assert "--pid=host" in docker  # NVML lists host PIDs: each worker finds its own GPU memory
    assert "$GITHUB_STEP_SUMMARY:/summary.md" in options["-v"] and "GITHUB_STEP_SUMMARY=/summary.md" in options["-e"]
    env = dict(e.split("=", 1) if "=" in e else (e, None) for e in options["-e"])
    # The history, the artifact cache and downloaded weights live in the state folder, so they survive the night.
    for name in ("HISTORY", "CACHE", "TORCH_HOME", "HF_HOME"):
        assert env[name].startswith("/state/"), name
    assert {"TARGET", "MODELS", "QUICK"} <= set(env)  # passed through from the job's environment


def test_nightly_gpu_leaves_the_defaults_to_the_script() -> None:
    """The model list and target live in scripts/nightly.sh only; the workflow passes an input on when set."""
    workflow = load("nightly-gpu.yml")
    (job,) = workflow["jobs"].values()
    inputs = workflow["on"]["workflow_dispatch"]["inputs"]
    for name in ("target", "models"):
        assert inputs[name]["default"] == ""
        assert job["env"][name.upper()] == f"${{{{ inputs.{name} }}}}"  # no `|| 'a,b,c'` fallback copy
    assert "mobilenetv4" in NIGHTLY.read_text()


def test_nightly_gpu_checks_the_state_folder_first(tmp_path: Path) -> None:
    (job,) = load("nightly-gpu.yml")["jobs"].values()
    steps = [s for s in job["steps"] if "run" in s]
    check = steps[0]
    assert "$STATE" in check["run"] and steps.index(check) < steps.index(nightly_step(job))
    done = subprocess.run(
        ["bash", "-c", check["run"]],
        env=dict(os.environ, STATE=str(tmp_path / "state")),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert {p.name for p in (tmp_path / "state").iterdir()} == {"cache", "torch", "huggingface"}
    refused = subprocess.run(
        ["bash", "-c", check["run"]],
        env=dict(os.environ, STATE="/proc/deploybench-state"),
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1 and "::error::" in refused.stdout and "sudo install -d -o" in refused.stdout


def test_cpu_workflow_runs_the_readme_test_command() -> None:
    workflow = load("ci.yml")
    assert {"push", "pull_request"} <= set(workflow["on"])
    job = workflow["jobs"]["test"]
    assert ["make", "test"] in shell_commands(run_lines(job))
    assert re.search(r"^test:", (ROOT / "Makefile").read_text(), re.M)


def test_every_script_a_workflow_names_exists_and_is_executable() -> None:
    for name in ("nightly-gpu.yml", "ci.yml"):
        for script in re.findall(r"scripts/[\w.-]+", (WORKFLOWS / name).read_text()):
            path = ROOT / script
            assert path.is_file() and os.access(path, os.X_OK), script
    subprocess.run(["bash", "-n", str(NIGHTLY)], check=True)


# The Dockerfile ---------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined."""
    text = re.sub(r"\\\n", "", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0], line.split(None, 1)[1] if " " in line else "") for line in lines]


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"deploybench_docker_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dockerfile_is_pinned_and_runs_deploybench() -> None:
    instructions = dockerfile_instructions()
    base = next(args for op, args in instructions if op == "FROM")
    match = re.fullmatch(r"nvcr\.io/nvidia/pytorch:(\d\d)\.(\d\d)-py3@sha256:[0-9a-f]{64}", base)
    assert match, base  # NVIDIA's PyTorch container: a YY.MM release, never `latest`, and the digest behind it
    assert 1 <= int(match.group(2)) <= 12
    assert ("ENTRYPOINT", '["deploybench"]') in instructions
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv"} <= set(ignored)


def test_dockerfile_installs_pinned_dependencies_before_copying_the_source() -> None:
    instructions = dockerfile_instructions()
    copy_all = instructions.index(("COPY", ". ."))
    early = instructions[:copy_all]
    copied = {name for op, args in early if op == "COPY" for name in args.split()[:-1]}
    assert copied == {"setup.cfg", "pyproject.toml", "docker/constraints.txt", "docker/requirements.py"}
    (install,) = [args for op, args in early if op == "RUN" and "pip install" in args]
    first, second = (shlex.split(part.split(">")[0]) for part in install.split("&&"))
    assert second[-4:] == ["-r", "/tmp/requirements.txt", "-c", "docker/constraints.txt"]
    # What the dependency layer installs, computed by the Dockerfile's own command from setup.cfg.
    listed = subprocess.run([sys.executable, *first[1:]], cwd=ROOT, capture_output=True, text=True, check=True)
    name_of = load_module(ROOT / "docker" / "requirements.py").name_of
    names = {name_of(line) for line in listed.stdout.split()}
    assert {"torch", "timm", "onnxruntime-gpu", "openvino", "ultralytics", "nvidia-ml-py"} <= names
    assert "onnxruntime" not in names  # the CPU build would shadow the GPU one
    constraints = (ROOT / "docker" / "constraints.txt").read_text().splitlines()
    pins = {name_of(line): line.split("==")[1] for line in constraints if line.strip() and not line.startswith("#")}
    assert set(pins) <= names  # every pin constrains something the image installs
    assert {"timm", "onnx", "onnxscript", "onnxslim", "onnxruntime-gpu", "openvino", "nncf", "ultralytics"} <= set(pins)
    # The base image's own builds; its compiled packages were built against its numpy.
    assert not {"torch", "torchvision", "numpy"} & set(pins)
    later = [args for op, args in instructions[copy_all:] if op == "RUN"]
    assert any("pip install --no-deps ." in args for args in later)


# scripts/nightly.sh against a stand-in deploybench -------------------------------------------------

FAKE_DEPLOYBENCH = """
import json, os, sys
from pathlib import Path

args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[0] == "compare":
    out = Path(args[args.index("--out") + 1])
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text("{}")
    (out / "results.md").write_text("| results |\\n")
    print("the table")
elif args[0] == "regress":
    verdict = os.environ["FAKE_VERDICT"]
    if "--markdown" in args:
        Path(args[args.index("--markdown") + 1]).write_text(f"## Regression check: {verdict}\\n")
    print({"pass": "PASS: 1 ok", "fail": "FAIL: 1 regressed", "none": "no baseline: no history at x yet",
           "error": "error: bad input"}[verdict])
    sys.exit({"pass": 0, "none": 0, "fail": 1, "error": 2}[verdict])
"""


def fake_night(tmp_path: Path, verdict: str, quick: str = "0") -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    fake = tmp_path / "fake_deploybench.py"
    fake.write_text(FAKE_DEPLOYBENCH)
    log = tmp_path / f"calls-{verdict}-{quick}.jsonl"
    env = dict(
        os.environ,
        DEPLOYBENCH=f"{sys.executable} {fake}",
        FAKE_LOG=str(log),
        FAKE_VERDICT=verdict,
        QUICK=quick,
        OUT=str(tmp_path / f"out-{verdict}-{quick}"),
        HISTORY=str(tmp_path / "h.sqlite"),
        GITHUB_STEP_SUMMARY="",
    )
    done = subprocess.run(["bash", str(NIGHTLY)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    return done, [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.parametrize(
    "verdict, quick, code, recorded",
    [
        ("pass", "0", 0, True),
        ("none", "0", 0, True),  # a first night becomes the first baseline
        ("fail", "0", 1, False),  # a regression must not become part of the baseline it is judged against
        ("error", "0", 2, False),
        ("pass", "1", 0, False),  # a smoke run is not a night
    ],
)
def test_nightly_gates_first_and_records_only_passing_full_nights(
    tmp_path: Path, verdict: str, quick: str, code: int, recorded: bool
) -> None:
    done, calls = fake_night(tmp_path, verdict, quick)
    assert done.returncode == code, done.stderr
    commands = [call[0] for call in calls]
    assert commands == ["compare", "regress"] + (["history"] if recorded else [])
    assert "--record" not in calls[0] and "--history" not in calls[0]  # compare itself never records
    out = tmp_path / f"out-{verdict}-{quick}"
    if recorded:
        assert calls[2] == ["history", "--record", str(out / "results.json"), "--history", str(tmp_path / "h.sqlite")]
    assert ("::warning" in done.stdout) == (verdict == "none")
    assert (out / "verdict.txt").read_text().strip() == {
        "pass": "PASS",
        "none": "NO-BASELINE",
        "fail": "FAIL",
        "error": "ERROR",
    }[verdict]


# scripts/nightly.sh end to end on the CPU ---------------------------------------------------------


def recorded_runs(history: Path) -> int:
    if not history.exists():
        return 0
    with sqlite3.connect(history) as conn:
        return conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


@pytest.mark.slow
def test_nightly_script_end_to_end_on_the_cpu(tmp_path: Path) -> None:
    """Two full nights and a smoke run on the CPU target, recorded in and gated against a real history."""
    deploybench = shutil.which("deploybench", path=str(Path(sys.executable).parent)) or "deploybench"
    history = tmp_path / "history.sqlite"
    env = dict(
        os.environ,
        TARGET="cpu",
        MODELS="test_resnet",
        RUNTIMES="onnxruntime",
        BATCHES="1",
        HISTORY=str(history),
        CACHE=str(tmp_path / "cache"),
        DEPLOYBENCH=deploybench,
    )
    verdicts, runs = [], []
    for night, quick in ((1, "0"), (2, "0"), (3, "1")):
        out = tmp_path / f"night{night}"
        summary = tmp_path / f"summary{night}.md"
        done = subprocess.run(
            ["bash", str(NIGHTLY)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            env=dict(env, QUICK=quick, OUT=str(out), GITHUB_STEP_SUMMARY=str(summary)),
        )
        verdict = (out / "verdict.txt").read_text().strip()
        verdicts.append(verdict)
        runs.append(recorded_runs(history))
        # The exit status and the verdict agree; the second night's verdict depends on this machine's noise.
        assert (done.returncode, verdict) in ((0, "NO-BASELINE"), (0, "PASS"), (1, "FAIL")), done.stderr[-2000:]
        for name in ("results.json", "results.md", "report.html", "regress.txt"):
            assert (out / name).stat().st_size > 0, name
        assert summary.read_text().startswith(f"# deploybench nightly (cpu): {verdict}")
    assert verdicts[0] == "NO-BASELINE" and verdicts[1] in ("PASS", "FAIL")
    assert "Regression check" in (tmp_path / "summary2.md").read_text()
    # Night 1 recorded; night 2 only if it passed; the smoke run never, and it is not gated against full nights.
    assert runs == [1, 2, 2] if verdicts[1] == "PASS" else runs == [1, 1, 1]
    assert verdicts[2] == "NO-BASELINE"


def test_everything_the_image_installs_is_pinned() -> None:
    """Each requirement of deploybench and of the image's extras has an == pin, or comes with the base image."""
    instructions = dockerfile_instructions()
    (install,) = [args for op, args in instructions if op == "RUN" and "requirements.py" in args]
    first = shlex.split(install.split("&&")[0].split(">")[0])
    listed = subprocess.run([sys.executable, *first[1:]], cwd=ROOT, capture_output=True, text=True, check=True)
    name_of = load_module(ROOT / "docker" / "requirements.py").name_of
    constraints = (ROOT / "docker" / "constraints.txt").read_text().splitlines()
    pinned = {name_of(line) for line in constraints if "==" in line and not line.startswith("#")}
    base_image = {"torch", "torchvision", "numpy"}
    needed = {name_of(line) for line in listed.stdout.splitlines() if 'python_version < "3.11"' not in line}
    assert needed - pinned - base_image == set()


# scripts/docker_build.py: builds where a Docker engine answers, skips with the reason elsewhere ----

DOCKER_BUILD = ROOT / "scripts" / "docker_build.py"


def fake_docker(folder: Path, engine: bool) -> Path:
    """A docker client that logs its calls; its engine answers only when told."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "docker"
    script.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        "open(os.environ['FAKE_DOCKER_LOG'], 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        "if sys.argv[1] == 'info':\n"
        f"    print('28.2.2') if {engine} else sys.exit('Cannot connect to the Docker daemon')\n"
        "elif sys.argv[1] == 'image':\n"
        "    print('nvcr.io/nvidia/pytorch@sha256:' + 'a' * 64)\n"
        "elif sys.argv[1] == 'run':\n"
        "    print('timm==1.0.31')\n"
    )
    script.chmod(0o755)
    return folder


def run_docker_build(tmp_path: Path, path: str, log: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=path, FAKE_DOCKER_LOG=str(log))
    return subprocess.run(
        [sys.executable, str(DOCKER_BUILD), "--out", str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_docker_build_skips_without_a_client_or_an_engine(tmp_path: Path) -> None:
    log = tmp_path / "calls.txt"
    no_client = run_docker_build(tmp_path, str(tmp_path / "empty"), log)
    assert no_client.returncode == 0 and "skipped: no docker client on PATH" in no_client.stdout
    no_engine = run_docker_build(tmp_path, str(fake_docker(tmp_path / "bin", engine=False)), log)
    assert no_engine.returncode == 0
    assert "skipped: no Docker engine answers (Cannot connect to the Docker daemon)" in no_engine.stdout
    assert log.read_text().split("\n")[0].startswith("info")  # asked, and built nothing
    assert "build" not in log.read_text()


def test_docker_build_builds_and_records_the_image_where_an_engine_answers(tmp_path: Path) -> None:
    log = tmp_path / "calls.txt"
    done = run_docker_build(tmp_path, str(fake_docker(tmp_path / "bin", engine=True)), log)
    assert done.returncode == 0, done.stdout + done.stderr
    calls = log.read_text().splitlines()
    assert calls[1] == f"build -t deploybench:ci {ROOT}"
    assert (tmp_path / "out" / "base-image.txt").read_text().startswith("nvcr.io/nvidia/pytorch@sha256:")
    assert (tmp_path / "out" / "pip-freeze.txt").read_text() == "timm==1.0.31\n"


def test_ci_builds_the_image_with_the_script() -> None:
    job = load("ci.yml")["jobs"]["docker"]
    assert any("scripts/docker_build.py" in step.get("run", "") for step in job["steps"])
    assert re.search(r"^docker-build:", (ROOT / "Makefile").read_text(), re.M)


def test_nightly_smoke_step_is_the_gpu_check_script() -> None:
    (job,) = load("nightly-gpu.yml")["jobs"].values()
    steps = [step for step in job["steps"] if "scripts/gpu_check.py" in step.get("run", "")]
    assert len(steps) == 1 and job["steps"].index(steps[0]) < job["steps"].index(nightly_step(job))
    (docker,) = [c for c in shell_commands(steps[0]["run"]) if c[:2] == ["docker", "run"]]
    assert docker_run_options(docker)["--gpus"] == ["all"] and "scripts/gpu_check.py" in docker
    assert re.search(r"^gpu-check:\n\t.*scripts/gpu_check.py", (ROOT / "Makefile").read_text(), re.M)
