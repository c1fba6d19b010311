# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Each creates .venv (and installs jaxconv into it) when missing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test

.PHONY: demo test lint format install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(STAMP)

# The main job: LeNet-5 on the 5,000 bundled MNIST digits (no download needed).
demo: $(STAMP)
	$(BIN)/python launch.py --config experiments/lenet5_mnist.py --workdir runs/lenet5_mnist

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest -q -n 2 --durations=10

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) runs
