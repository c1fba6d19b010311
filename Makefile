# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Each creates .venv (and installs jaxconv into it) when missing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test

.PHONY: demo test lint format install data clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(STAMP)

# The main job: LeNet-5 on the 5,000 bundled MNIST digits (no download needed).
demo: $(STAMP)
	$(BIN)/python launch.py --config experiments/lenet5_mnist.py --workdir runs/lenet5_mnist

# Full Fashion-MNIST from Debian's archive (as root, when missing); without it, the tests that
# read the real files skip.
FASHION_MNIST := /usr/share/datasets/fashion-mnist
data:
	@test -d $(FASHION_MNIST) || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; } || \
	  echo "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist): its tests skip."

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

test: lint data
	$(BIN)/python -m pytest -q -n 2 --durations=10

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) runs
