# Set-up and everyday commands. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install sync run test lint bench bench-validate bench-oioxml bench-hl7v2 bench-faults clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

sync: install
	$(BIN)/hub schemas sync

run: sync
	$(BIN)/hub serve

test: sync
	sh scripts/ensure-postgresql.sh
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check hub tests bench
	$(BIN)/mypy hub

bench: sync
	command -v wrk >/dev/null || (apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null) || true
	$(BIN)/python bench/booking.py

bench-validate: sync
	$(BIN)/python bench/validate.py

bench-oioxml: sync
	$(BIN)/python bench/oioxml.py

bench-hl7v2: sync
	$(BIN)/python bench/hl7v2.py

bench-faults: sync
	sh scripts/ensure-postgresql.sh
	$(BIN)/python bench/faults.py

clean:
	rm -rf $(VENV) var
