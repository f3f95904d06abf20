# securepipe: every install and run goes through here.
# `make demo` and `make test` set up what they need on a fresh machine that has Python 3.11.
SHELL := /bin/bash
PYTHON ?= python3.11
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
VENV := .venv
VENV_TRAIN := .venv-train
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export UV_LINK_MODE=copy
# Never let boto3 probe the EC2 metadata endpoint: everything AWS here is on loopback.
export AWS_EC2_METADATA_DISABLED=true

.PHONY: setup setup-airflow setup-train lock lexicon demo test up security \
	corpora corpora-tab corpora-presidio-research corpora-deid corpora-meddocan corpora-sample

setup: setup-airflow setup-train

$(UV):
	$(PYTHON) -m pip install --user --quiet uv

# The stamp files make `make setup` idempotent: a venv is rebuilt only when its lock file changes.
$(VENV)/.installed: requirements.txt pyproject.toml | $(UV)
	@test -x $(VENV)/bin/python || $(UV) venv --python $(PYTHON) $(VENV)
	$(UV) pip install --python $(VENV)/bin/python --require-hashes -r requirements.txt
	$(UV) pip install --python $(VENV)/bin/python --no-deps -e .
	@touch $@

$(VENV_TRAIN)/.installed: requirements-train.txt pyproject.toml | $(UV)
	@test -x $(VENV_TRAIN)/bin/python || $(UV) venv --python $(PYTHON) $(VENV_TRAIN)
	$(UV) pip install --python $(VENV_TRAIN)/bin/python --require-hashes -r requirements-train.txt
	$(UV) pip install --python $(VENV_TRAIN)/bin/python --no-deps -e .
	@touch $@

setup-airflow: $(VENV)/.installed
setup-train: $(VENV_TRAIN)/.installed

# Re-resolve both lock files (needs the package index).
lock: | $(UV)
	$(UV) pip compile --python-version 3.11 requirements.in -o requirements.txt --generate-hashes
	$(UV) pip compile --python-version 3.11 --python-platform x86_64-manylinux_2_28 requirements-train.in -o requirements-train.txt --generate-hashes

demo: setup
	$(VENV)/bin/securepipe demo $(DEMO_ARGS)

# Two suites at once, each printed when it ends: the training environment's (tests_train/) and the
# Airflow environment's (tests/, over PYTEST_WORKERS pytest-xdist workers; tests/conftest.py keeps a
# module, or the modules sharing one Airflow stack, on one worker and starts the slowest first).
# Three workers on two cores: the load test and the fault tests (a stack each) mostly wait, and a
# third worker runs everything else meanwhile.
PYTEST_WORKERS ?= 3
.PHONY: test-train test-airflow
test: setup
	$(MAKE) --no-print-directory -j2 --output-sync=target test-train test-airflow

test-train: setup-train
	$(VENV_TRAIN)/bin/python -m pytest tests_train $(PYTEST_ARGS)

test-airflow: setup-airflow
	$(VENV)/bin/python -m pytest tests -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

up: setup
	$(VENV)/bin/securepipe up $(UP_ARGS)

# The word lexicon of the free-text name rules (include/securepipe/pii/data/), rebuilt from public lists.
lexicon: setup-airflow
	$(VENV)/bin/python tools/build_lexicon.py

# bandit (no high findings), pip-audit of both lock files (NOT AUDITED is said loudly, never a pass),
# a CycloneDX SBOM of each environment; outputs under build/security/.
security: setup
	$(VENV)/bin/python -m securepipe.supply_chain

# Public labeled corpora for `securepipe eval pii`, converted into build/corpora/<name>/ (docs/PII-EVAL.md says
# where each source comes from and how it is converted). CORPORA_SRC holds the sources as published:
#   text-anonymization-benchmark/  a checkout of the TAB repository (echr_train/dev/test.json)
#   presidio-research/             a checkout of presidio-research (data/synth_dataset_v2.json)
#   deid/                          id.text and id-phi.phrase from PhysioNet's deid 1.1 package
#   meddocan/                      a checkout of SPACCC_MEDDOCAN (corpus/{train,dev,test}/brat)
# `make -k corpora` converts those that are there. The converters use the standard library only.
CORPORA_SRC ?= build/corpora-src
CORPORA_OUT ?= build/corpora
CORPORA_ARGS ?=
corpora: corpora-tab corpora-presidio-research corpora-deid corpora-meddocan

corpora-tab:
	$(PYTHON) benchmarks/corpora/convert_tab.py $(CORPORA_SRC)/text-anonymization-benchmark $(CORPORA_OUT)/tab-echr $(CORPORA_ARGS)

corpora-presidio-research:
	$(PYTHON) benchmarks/corpora/convert_presidio_research.py $(CORPORA_SRC)/presidio-research $(CORPORA_OUT)/presidio-research-synth $(CORPORA_ARGS)

corpora-deid:
	$(PYTHON) benchmarks/corpora/convert_physionet_deid.py $(CORPORA_SRC)/deid $(CORPORA_OUT)/physionet-deid-nursing-notes $(CORPORA_ARGS)

corpora-meddocan:
	$(PYTHON) benchmarks/corpora/convert_meddocan.py $(CORPORA_SRC)/meddocan $(CORPORA_OUT)/meddocan-es $(CORPORA_ARGS)

# Samples of at most 200 KB each (the first dev and test documents), for quick runs.
corpora-sample:
	$(MAKE) -k corpora CORPORA_OUT=build/corpora-sample CORPORA_ARGS="--sample-bytes 200000"
