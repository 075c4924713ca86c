# The front door: `make run` for a local stack, `make test` for everything CI runs.
SHELL := /bin/bash

VENV := .venv
PYTHON := $(VENV)/bin/python
# Reinstalled whenever pyproject.toml (the dependencies) changes.
VENV_STAMP := $(VENV)/.installed

# command:Debian package, for what the stack and its tests run besides Python.
# ab (ApacheBench) and redis-cli are for `make bench` and its smoke test in `make test`.
# npm installs axe-core, which the browser tests run on every page (package.json).
SYSTEM_DEPS := npm:npm nginx:nginx oathtool:oathtool zbarimg:zbar-tools chromium:chromium envsubst:gettext-base kubectl:kubectl ab:apache2-utils redis-cli:redis-tools

# The French catalogue: its source (.po) is in the repository, the compiled .mo is made here.
CATALOGUE := services/common/locale/fr/LC_MESSAGES/messages

# axe-core from npm, at the version package-lock.json pins.
AXE := node_modules/axe-core/axe.min.js

.PHONY: help venv catalogues gateway-pages translations system-deps run up down status lint test bench bench-routes bench-floor soak clean

help:
	@echo "make run      start the stack in the foreground (Ctrl-C stops it)"
	@echo "make up       start the stack in the background; make down stops it; make status"
	@echo "make test     lint, then every test (unit, integration, browser)"
	@echo "make lint     ruff and mypy"
	@echo "make soak     customers sign in for SOAK_SECONDS (60) while Redis restarts and a replica dies"
	@echo "make bench    the speed figures of docs/performance.md (a few minutes; not part of make test)"
	@echo "make bench-routes  main-thread CPU per request by route over BENCH_ROUTES_SIGN_INS (60) sign-ins (under a minute)"
	@echo "make bench-floor   a sign-in's requests through nginx to routes that do no work, beside argon2 (seconds)"
	@echo "make translations  add the new strings for people to the French catalogue (.po), to translate"
	@echo "make gateway-pages  regenerate nginx's own error pages (gateway/pages) from the template and catalogue"
	@echo "make clean    stop the stack, remove its state and the caches"

venv: $(VENV_STAMP)

$(VENV_STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -e '.[dev]'
	touch $@

catalogues: $(CATALOGUE).mo

$(AXE): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

$(CATALOGUE).mo: $(CATALOGUE).po $(VENV_STAMP)
	$(VENV)/bin/pybabel compile --domain messages --locale fr --input-file $< --output-file $@

# Extracts every string of the templates and the code (babel.cfg) and merges the new ones into
# the .po, empty: fill them in; services/common/tests/test_catalogue.py fails until then.
# nginx's own error pages, from services/common/templates/gateway_error.html and the catalogue;
# committed (Kubernetes ships gateway/ as it is); `make lint` and tests/test_gateway_pages.py fail
# when they are not current (a change to style.css, base.html or the catalogue needs this).
gateway-pages: venv catalogues
	$(VENV)/bin/python -m devstack.gateway_pages

translations: venv
	mkdir -p build
	$(VENV)/bin/pybabel extract --mapping-file babel.cfg --keywords ngettext_now:1,2 --ignore-dirs tests \
	    --no-location --sort-output --output-file build/messages.pot services
	$(VENV)/bin/pybabel update --domain messages --input-file build/messages.pot \
	    --output-dir services/common/locale --no-fuzzy-matching --ignore-obsolete --width 100

# nginx lives in /usr/sbin, which is not on every user's PATH.
system-deps:
	@missing=""; \
	for dep in $(SYSTEM_DEPS); do \
	    tool=$${dep%%:*}; package=$${dep#*:}; \
	    if ! PATH="$$PATH:/usr/sbin:/usr/local/sbin" command -v $$tool >/dev/null 2>&1; then \
	        missing="$$missing $$package"; \
	    fi; \
	done; \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" -ne 0 ]; then \
	        echo "Missing system packages:$$missing" >&2; \
	        echo "Install them as root (sudo apt-get install$$missing), then run make again." >&2; \
	        exit 1; \
	    fi; \
	    echo "Installing$$missing"; \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi

run: system-deps venv catalogues
	$(PYTHON) -m devstack run

up: system-deps venv catalogues
	$(PYTHON) -m devstack up

down: venv
	$(PYTHON) -m devstack down

status: venv
	$(PYTHON) -m devstack status

lint: venv catalogues
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy services devstack bench
	$(VENV)/bin/python -m devstack.gateway_pages --check

# pytest exits 5 when it collected no tests: a run that tested nothing must not pass.
test: system-deps venv lint catalogues $(AXE)
	@$(PYTHON) -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "no tests ran" >&2; exit 1; fi; \
	exit $$status

# Not part of `make test` (its smoke version is): a stack of its own, driven through its gateway;
# prints the table and writes bench/results.json. Knobs (BENCH_*): docs/performance.md.
bench: system-deps venv catalogues
	$(PYTHON) -m bench

# Not part of `make test` either (its smoke version is): main-thread CPU per request by route,
# one customer at a time; prints the table and writes bench/routes.json. BENCH_ROUTES_SIGN_INS (60).
bench-routes: system-deps venv catalogues
	$(PYTHON) -m bench.routes

# Not part of `make test` either (its smoke version is): the floor under this design, a later
# sign-in's requests to routes that do no work (bench/floor_app.py); writes bench/floor.json.
bench-floor: system-deps venv
	$(PYTHON) -m bench.floor

# tests/load/test_soak.py, which make test runs for 15 s; SOAK_CUSTOMERS (4) customers at once.
SOAK_SECONDS ?= 60
soak: system-deps venv catalogues
	SOAK_SECONDS=$(SOAK_SECONDS) $(PYTHON) -m pytest tests/load -q -s

# The venv stays: rebuilding it is slow and it holds nothing of the stack's state.
clean:
	@if [ -x $(PYTHON) ]; then $(PYTHON) -m devstack down; fi
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache build
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
