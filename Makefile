# flashalpha: `make run` and `make test` work on a fresh machine; everything else is a step of them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
INSTALL_STAMP := $(VENV)/.stamp-install
EXTENSION_STAMP := $(VENV)/.stamp-extensions
WEB_STAMP := web/dist/index.html
PYX := $(wildcard cython/flashalpha/*.pyx cython/flashalpha/*.pxd cython/flashalpha/*.h)
WEB_SOURCES := $(shell find web -path web/node_modules -prune -o -path web/dist -prune -o -type f -print 2>/dev/null)
PYTEST_ARGS ?=

.PHONY: install run test bench lint format clean web

install: $(INSTALL_STAMP) $(EXTENSION_STAMP) web

$(INSTALL_STAMP): pyproject.toml setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip==26.3
	$(PIP) install --quiet setuptools==84.2.1 wheel==0.48.0 Cython==3.3.1 numpy==2.4.6
	$(PIP) install --quiet --no-build-isolation -e '.[dev,bench]'
	# py_vollib_vectorized's own dependency resolution is broken: its peers are pinned in the
	# bench extra above and it is installed without dependencies.
	$(PIP) install --quiet --no-deps py_vollib_vectorized==0.1.1
	@touch $@

$(EXTENSION_STAMP): $(INSTALL_STAMP) $(PYX) setup.py
	$(PY) setup.py --quiet build_ext --inplace
	@touch $@

# The UI is built when web/ holds a project and its build is older than its sources.
web:
	@if [ -f web/package.json ]; then $(MAKE) --no-print-directory $(WEB_STAMP); fi

$(WEB_STAMP): $(WEB_SOURCES)
	cd web && npm ci --no-audit --no-fund && npm run build

run: install
	$(VENV)/bin/flashalpha run $(RUN_ARGS)

test: install
	@# The browser tests drive Debian's Chromium (Playwright never downloads a browser).
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	@if [ -f web/package.json ]; then cd web && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm test --silent; fi
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(PY) -m pytest bench --benchmark-only --benchmark-columns=min,median,max,ops,rounds \
		--benchmark-sort=name $(BENCH_ARGS)

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

format: install
	$(VENV)/bin/ruff check --fix src tests bench
	$(VENV)/bin/ruff format src tests bench

clean:
	rm -rf build $(EXTENSION_STAMP) src/flashalpha/*.so cython/flashalpha/*.c web/dist
