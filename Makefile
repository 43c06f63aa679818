# Two commands do all set-up on a fresh machine:
#   make local   set up, then train on real MNIST, pack, serve locally and write the report
#   make test    set up, then lint and run the test suite
# Everything installs into this folder (.venv/, node_modules/); nothing global.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export CDK_DISABLE_CLI_TELEMETRY := true
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export SAGEMAKER_SUPPRESS_V2_WARNING := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: local test lint format synth setup setup-dev clean bench

local: setup
	$(PY) -m pipeline.main $(ARGS)

test: setup-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup-dev
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

synth: setup
	npx --no-install cdk synth --no-notices --quiet

bench: setup
	$(PY) -m bench.training
	$(PY) -m bench.endpoint

setup: $(VENV)/.runtime node_modules/.installed
setup-dev: setup $(VENV)/.dev

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

clean:
	rm -rf build cdk.out
