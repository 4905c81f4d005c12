# The two quick-start commands (`make lab`, `make test`) bootstrap .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat constraints.txt pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: lab test lint typecheck check bench lock clean

$(STAMP): constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test,lint]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

lab: $(STAMP)
	$(BIN)/tslic lab $(ARGS)

# Four workers on two cores: many tests wait on real processes and sockets, so two workers
# per core keep both cores busy (8 min serial -> about 4 min on two cores).
# Bytecode caching is forced on for the run (PYTHONDONTWRITEBYTECODE emptied): the suite
# starts some 300 Python processes (daemons, CLI commands) plus the workers, and with the
# variable set each of them recompiles every tslic module it imports and each worker
# re-rewrites every test module (docs/DEVELOPING.md, "Test suite time").
test: $(STAMP)
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -n 4 $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

lock: $(STAMP)
	{ head -2 constraints.txt; $(BIN)/python -m pip freeze --exclude-editable; } > constraints.new && mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .hypothesis
