# The two commands of a fresh machine. Each creates and fills its own virtual environment.
#   make compare   the main job: deploybench compare --models yolov8n,mobilenetv4 on the CPU -> results/
#   make test      the test suite (what .ci/run calls)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
MODELS ?= yolov8n,mobilenetv4
OUT    ?= results

.PHONY: compare test bench-fidelity clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all,dev]'
	touch $@

compare: $(VENV)/.installed
	$(BIN)/deploybench compare --models $(MODELS) --target cpu --out $(OUT) --html $(OUT)/report.html

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench-fidelity: $(VENV)/.installed
	$(BIN)/python benchmarks/fidelity.py --readme README.md --out benchmarks/results/fidelity-cpu.md

clean:
	rm -rf $(VENV) $(OUT) build *.egg-info
