# recunlearn: `make test` and `make bench` install what is missing first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# the CPU build of torch (a plain `torch` requirement would pull a CUDA build of several GB)
TORCH ?= torch==2.13.0
export UNLEARN_DATA_DIR ?= $(abspath ../shared/datasets)
RESULTS ?= results
STAMP := $(VENV)/.installed

.PHONY: install test test-slow bench tables table tune paper-tables perf clean docs lint FORCE

# a wheel index for torch (e.g. https://download.pytorch.org/whl/cu126 with TORCH=torch==2.13.0+cu126)
TORCH_INDEX ?=
TORCH_STAMP := $(VENV)/.torch

# the torch request as last made: rewritten (and so newer than the install stamp) only when it changes,
# so `make install TORCH=... TORCH_INDEX=...` installs the requested build even after a first install
$(TORCH_STAMP): FORCE
	@mkdir -p $(VENV)
	@echo "$(TORCH) $(TORCH_INDEX)" | cmp -s - $@ 2>/dev/null || echo "$(TORCH) $(TORCH_INDEX)" > $@

$(STAMP): pyproject.toml $(TORCH_STAMP)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) --extra-index-url https://pypi.org/simple)
	$(PY) -m pip install --quiet -e ".[test,perf,tracking,lint]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# the default sweeps on ML-100K (experiment=smoke_eemu, then experiment=smoke), then their tables and
# figures; BENCH_JOBS runs at once, one thread each (ML-100K's small training steps keep one core
# busy, not two)
BENCH_JOBS ?= 2
bench: $(STAMP)
	@start=$$(date +%s); \
	for exp in smoke_eemu smoke; do \
	    UNLEARN_RESULTS_DIR=$(RESULTS) $(PY) -m benchmarks.run -m experiment=$$exp runtime.progress=false \
	        hydra/launcher=joblib hydra.launcher.n_jobs=$(BENCH_JOBS) runtime.threads=1 || exit 1; \
	done && \
	$(PY) -m benchmarks.report results_dir=$(RESULTS) && \
	$(PY) -m benchmarks.perf.summary --out $(RESULTS)/perf --record-bench $$(( $$(date +%s) - start )) > /dev/null && \
	echo "make bench: $$(( $$(date +%s) - start )) s (appended to $(RESULTS)/perf/bench.jsonl)"

tables: $(STAMP)
	$(PY) -m benchmarks.report results_dir=$(RESULTS)

# one paper table: make table NAME=receraser_utility
table: $(STAMP)
	$(PY) -m benchmarks.table $(NAME) results_dir=$(RESULTS)

# tune a sub-model for method=retrain on a dataset's validation split (Optuna TPE, 30 trials) and
# write conf/submodel/tuned/<dataset>_<submodel>.yaml: make tune SUBMODEL=bpr DATASET=ml100k
SUBMODEL ?= bpr
DATASET ?= ml100k
tune: $(STAMP)
	UNLEARN_RESULTS_DIR=$(RESULTS) $(PY) -m benchmarks.run -m experiment=tune_$(SUBMODEL) dataset=$(DATASET)

# reference results: the paper tables in docs/results/, each rendered from its committed records
# (docs/results/<table>.jsonl): seeds $(RESULTS)/paper with them, runs only the runs missing from
# them, merges the new ones back, renders. PAPER_ARGS: --only NAME, --render-only (run nothing),
# --plan gpu (the GPU plan, same files), --set KEY=VALUE (e.g. a SLURM launcher), --list
PAPER_ARGS ?=
paper-tables: $(STAMP)
	$(PY) -m benchmarks.paper_tables --results $(RESULTS)/paper $(PAPER_ARGS)

# side-by-side performance benchmarks: each appends a record to results/perf/<name>.jsonl; the
# summary puts the latest figures against the targets (results/perf/summary.md). `methods` runs
# every method once on ML-1M (most of the time: RecEraser's and retrain's fits).
perf: $(STAMP)
	$(PY) -m benchmarks.perf.evaluation
	$(PY) -m benchmarks.perf.bpr_vs_implicit
	$(PY) -m benchmarks.perf.als_vs_implicit
	$(PY) -m benchmarks.perf.clustering
	$(PY) -m benchmarks.perf.partitioning
	$(PY) -m benchmarks.perf.aggregator
	$(PY) -m benchmarks.perf.methods
	$(PY) -m benchmarks.perf.summary

clean:
	rm -rf $(RESULTS)/runs $(RESULTS)/tables $(RESULTS)/figures $(RESULTS)/logs $(RESULTS)/cache .pytest_cache

# the documentation site (mkdocs.yml, docs/) into site/, every warning an error; installs the
# `docs` extra (mkdocs, mkdocs-material, mkdocstrings) into $(VENV) when it is missing
docs: $(STAMP)
	$(PY) -c "import mkdocs, material, mkdocstrings_handlers.python" 2>/dev/null || $(PY) -m pip install --quiet -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

# ruff's lint and format checks (pyproject.toml's [tool.ruff]); `pre-commit install` runs them on commit
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
