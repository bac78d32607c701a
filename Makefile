# Two entry points: `make run` (the main job on its embedded defaults) and `make test` (everything CI runs).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DB := var/demo.db

.PHONY: run test lint typecheck unit clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

# The main job on embedded defaults: SQLite file, no Kafka, no credentials, dry-run actions,
# fed the bundled sample Alertmanager stream. Starts from an empty demo database each time.
run: $(VENV)/.installed
	@rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
	ORCH_DATABASE_URL=sqlite+aiosqlite:///$(DEMO_DB) $(BIN)/orchestrator run --replay --input examples/alertmanager-stream.jsonl
	@echo
	@echo "Explore it: $(BIN)/orchestrator --db sqlite+aiosqlite:///$(DEMO_DB) incidents list"

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(VENV)/.installed
	$(BIN)/mypy

unit: $(VENV)/.installed
	$(BIN)/pytest tests/unit -q

# Everything CI runs. Tests needing PostgreSQL skip without ORCH_TEST_POSTGRES_URL,
# unless ORCH_REQUIRE_SERVICES=1 (set by .ci/run), where they fail instead.
test: lint typecheck
	$(BIN)/orchestrator playbooks validate playbooks/
	$(BIN)/pytest --cov --cov-report=term:skip-covered

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache .coverage
