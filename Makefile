# Every target sets up what it needs from nothing: a fresh clone runs `make run` or `make test` directly.
# One .venv, three stamps: `make run` installs the package alone (RUN_STAMP), `make test` and the tools add
# the dev extra (STAMP), `make bench`/`soak` add the bench extra too (BENCH_STAMP). A stamp is touched only
# by the install that satisfies it, and a fuller install touches the leaner stamps as well (it contains
# them), so `make run` then `make test` installs the dev tools once, and `make test` then `make run`
# installs nothing more. Each depends on pyproject.toml: editing the dependencies reinstalls.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
JS_STAMP := tests/js/node_modules/.installed
# The official Socket.IO client Tether serves at /socket.io/socket.io.js: copied from npm's socket.io-client
# into the package (never committed). Without npm the step fails, says so, and Tether serves a 404 hint.
BUNDLE := src/tether/static/client/socket.io.js

.PHONY: run test style types cov bench bench-quick soak system-deps clean

$(RUN_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e .
	touch $@

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(RUN_STAMP) $@

$(BENCH_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $(RUN_STAMP) $(STAMP) $@

$(JS_STAMP): tests/js/package.json
	cd tests/js && npm install --no-audit --no-fund --loglevel=error
	touch $@

$(BUNDLE): | $(RUN_STAMP)
	-$(PY) -m tether.client_bundle install

system-deps:
	bash scripts/ensure-system-deps.sh

# The demo app (examples/login_timeout) on the embedded defaults: no Redis, one process.
run: $(RUN_STAMP) $(BUNDLE)
	$(VENV)/bin/tether start --config examples/login_timeout/tether.toml

# The example apps, one command each: `make example-group_chat`, `make example-rooms`, `make example-whiteboard`
# (any folder of examples/ with a tether.toml).
example-%: $(RUN_STAMP) $(BUNDLE)
	$(VENV)/bin/tether start --config examples/$*/tether.toml

test: system-deps $(STAMP) $(JS_STAMP) $(BUNDLE)
	$(PY) -m pytest -q -p no:cacheprovider

style: $(STAMP)
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check src tests bench

types: $(STAMP)
	$(VENV)/bin/mypy src

cov: system-deps $(STAMP) $(JS_STAMP)
	$(PY) -m coverage run --branch --source=src/tether -m pytest -q
	$(PY) -m coverage report -m

# W1-W8 and the growth curves in one run (about 20 minutes on 2 cores); recorded in bench/RESULTS.md only
# when the machine is quiet (load average < 0.5 at start and end). bench-quick: a few minutes, never recorded.
bench: system-deps $(BENCH_STAMP)
	$(PY) bench/run.py

bench-quick: system-deps $(BENCH_STAMP)
	$(PY) bench/run.py --quick

soak: $(BENCH_STAMP)
	$(PY) bench/soak.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) tests/js/node_modules
