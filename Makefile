# The two commands of a fresh machine. Each creates and fills its own virtual environment.
#   make compare   the main job: deploybench compare --models yolov8n,mobilenetv4 on the CPU -> results/
#   make test      the test suite (what .ci/run calls)
#   make gpu-check on a machine with an NVIDIA GPU: versions, GPU tests, a quick GPU compare -> $(GPU_CHECK_OUT)/
#                  (offline: uses the Python that has torch and the project; WHEELS=DIR installs wheels brought along)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
MODELS ?= yolov8n,mobilenetv4
OUT    ?= results

.PHONY: compare test lint bench-fidelity bench-main-job gpu-check docker-build clean

# TensorRT cannot be installed without a GPU; its type stubs go in a folder of their own, on
# mypy's path only (installed beside the libraries, an empty `tensorrt` package would import).
STUBS  := $(VENV)/typing-stubs

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all,dev]'
	$(BIN)/python -m pip install -q --no-deps --upgrade --target $(STUBS) tensorrt-stubs==10.13.0.35.1
	touch $@

compare: $(VENV)/.installed
	$(BIN)/deploybench compare --models $(MODELS) --target cpu --out $(OUT) --html $(OUT)/report.html

test: $(VENV)/.installed lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

# ruff (lint and format) and mypy; `make test` runs them first.
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/typecheck.py --stubs $(STUBS)

# No venv is built here: a GPU machine may be offline, with torch and the project already installed.
GPU_PYTHON    ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))
GPU_CHECK_OUT ?= gpu-check-out
WHEELS        ?=
gpu-check:
	$(GPU_PYTHON) scripts/gpu_check.py --out $(GPU_CHECK_OUT) $(if $(WHEELS),--wheels $(WHEELS))

# Builds the Docker image where a Docker engine runs; says why and exits 0 where none does.
docker-build:
	$(PYTHON) scripts/docker_build.py

bench-main-job: $(VENV)/.installed
	$(BIN)/python benchmarks/main_job.py --models $(MODELS) --readme

bench-fidelity: $(VENV)/.installed
	$(BIN)/python benchmarks/fidelity.py --readme README.md --block fidelity-control --pairs control --models mobilenetv4 --out benchmarks/results/fidelity-control-cpu.md --raw benchmarks/results/fidelity-control-cpu.json
	$(BIN)/python benchmarks/fidelity.py --readme README.md --out benchmarks/results/fidelity-cpu.md --raw benchmarks/results/fidelity-cpu.json

clean:
	rm -rf $(VENV) $(OUT) $(GPU_CHECK_OUT) build *.egg-info
