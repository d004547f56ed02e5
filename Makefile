# The two quickstart commands: `make demo` and `make test`.
VENV ?= .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup demo test bench

setup:
	VENV=$(VENV) scripts/setup.sh

demo: setup
	$(VENV)/bin/daozhang demo

test: setup
	$(VENV)/bin/python -m pytest

bench: setup
	for b in bench/*.py; do $(VENV)/bin/python $$b; done
