# The two commands: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv demo test test-all clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all]'
	touch $(STAMP)

venv: $(STAMP)

# The main job on built-in data: train the digits recipe and print its test metrics.
demo: venv
	$(VENV)/bin/edgecls train recipes/digits.yaml --force

test: venv
	$(PY) -m pytest

# Also the tests marked slow.
test-all: venv
	$(PY) -m pytest -m ''

clean:
	rm -rf $(VENV) runs .pytest_cache
