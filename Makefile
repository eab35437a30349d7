# Two entry points for a fresh machine (Python >= 3.11 on PATH as python3):
#   make demo   install into .venv, then run the demo (BBC News, random vs entropy, three annotators)
#   make test   install into .venv, then run the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test install bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/alband demo --out demo-out

test: $(STAMP)
	JAX_PLATFORMS=cpu $(PY) -m pytest -n 2

clean:
	rm -rf $(VENV) demo-out .pytest_cache .hypothesis
