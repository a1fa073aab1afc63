# The project's tasks. `make demo` and `make test` each set up everything on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install prerequisites lint test unit bench figures topics-script demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

prerequisites:
	@deploy/kafka/ensure-java-maven.sh

install: prerequisites $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The integration tests start a real Kafka broker (or use $$VIGIL_TEST_BOOTSTRAP).
test: install lint
	$(BIN)/python -m pytest

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit models stream

bench: install
	$(BIN)/vigil bench

# The README's figures (docs/images/), drawn by `vigil evaluate` on simulated data.
figures: $(STAMP)
	$(BIN)/python benchmarks/figures.py

# deploy/kafka/create-topics.sh, from the topics' one definition (stream/kafka/topic_specs.py).
topics-script: $(STAMP)
	$(BIN)/python -m stream.kafka.topic_specs > deploy/kafka/create-topics.sh

demo: install
	$(BIN)/vigil demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
