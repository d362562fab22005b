# Kefu: `make run` serves the bot, `make test` passes the tests. `make help` lists the rest.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: help setup model redis test-tools run test lint train reload evaluate catalogue bench retrain-bench nlu-bench clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@py=$$(scripts/find-python.sh) || exit 1; \
	  if [ ! -x $(PY) ]; then echo "creating $(VENV) with $$py"; "$$py" -m venv $(VENV) || exit 1; fi
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP) ## Create .venv (Python 3.10) and install the project

model: setup ## Train the model if models/ has none for the current data and config.yml
	$(PY) -m bot train --if-needed

train: setup ## Train a new model, score it, promote it if it passes the gate, reload running bots
	$(PY) -m bot train

reload: setup ## Tell running bots to serve the promoted model (models/serving.json)
	$(PY) -m bot reload

evaluate: setup ## Train if needed, evaluate on the held-out file, write reports/
	$(PY) -m bot evaluate

catalogue: setup ## Regenerate the product lookup table and jieba words from nlu_data/catalogue.yml
	$(PY) -m bot.nlu.catalogue

redis: setup ## Make sure Redis answers at REDIS_URL (starts a local one under var/redis if not)
	$(PY) scripts/ensure_redis.py

test-tools: ## Outside tools the tests drive (chromium, docker compose, redis-sentinel, haproxy)
	@scripts/ensure-test-tools.sh

run: model redis ## Install, train if needed, make sure Redis runs, serve the bot at BOT_HOST:BOT_PORT
	$(PY) -m bot seed-demo-orders
	$(PY) -m bot serve

test: model redis test-tools ## Install, train if needed, make sure Redis runs, run the whole test suite
	$(PY) -m pytest

lint: setup ## ruff and mypy
	$(PY) -m ruff check bot actions tests benchmarks scripts
	$(PY) -m mypy bot actions

bench: model redis ## Throughput benchmark against a freshly started bot
	$(PY) benchmarks/throughput.py --spawn --turns 10
	$(PY) benchmarks/throughput.py --spawn

retrain-bench: model redis ## Time from a relabel to the retrained model serving
	$(PY) benchmarks/retrain.py --runs 3

nlu-bench: model ## The NLU pipeline on the public benchmarks in ../shared/benchmarks; model load time and memory
	$(PY) benchmarks/nlu_public.py
	$(PY) benchmarks/model_load.py

clean: ## Remove the venv, models and local Redis files
	rm -rf $(VENV) models var .rasa
