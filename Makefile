# siyu — every target sets up what it needs, so a fresh clone works.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
CUSTOMERS ?= 50000

.PHONY: demo test lint typecheck bench install clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# setup.py compiles these with mypyc in place: an edit of one rebuilds on the next make.
COMPILED := src/siyu/collect/fastpath.py src/siyu/collect/validate.py src/siyu/collect/rows.py

$(STAMP): pyproject.toml setup.py $(COMPILED) | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/siyu demo --customers $(CUSTOMERS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest -n 2 -q

# lifetimes (the CLV benchmark's baseline) does not import with siyu's NumPy/pandas/SciPy.
LT_VENV := .venv-lifetimes
$(LT_VENV)/bin/python:
	$(PY) -m venv $(LT_VENV)
	$(LT_VENV)/bin/pip install -q lifetimes==0.11.3 'pandas<2.2' 'numpy<2' 'scipy<1.14' 'pyarrow<17'

bench: $(STAMP) $(LT_VENV)/bin/python
	$(BIN)/pip install -q -e '.[dev,bench]'
	SIYU_LIFETIMES_PYTHON=$(abspath $(LT_VENV))/bin/python $(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(LT_VENV) siyu-data .pytest_cache .mypy_cache .ruff_cache build
	find src -name '*.so' -delete
