# lwm2m_edu — two commands do everything on a fresh machine:
#   make lab    create .venv, install, open the notebooks in JupyterLab
#               (make demo: the same setup, then a whole update in the terminal)
#   make test   create .venv, install, run ruff, the tests and the notebooks (nbval)
# Both are idempotent: the install step re-runs only when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: test lab demo lint unit notebooks dot venv clean

test: lint unit notebooks

# JupyterLab refuses to run as root unless told; containers and CI machines often are root.
lab: $(INSTALLED) dot
	$(BIN)/jupyter lab --notebook-dir=notebooks $$(test "$$(id -u)" = 0 && echo --allow-root)

demo: $(INSTALLED)
	$(BIN)/lwm2m-edu demo

venv: $(INSTALLED)

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || { \
	  echo "lwm2m_edu needs Python 3.11 or newer; '$(PYTHON)' is $$($(PYTHON) --version 2>&1)."; \
	  echo "Run e.g.: make test PYTHON=python3.11"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

dot:
	@scripts/ensure-dot

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: $(INSTALLED) dot
	$(BIN)/pytest

# nbval runs every notebook top to bottom; cells marked NBVAL_CHECK_OUTPUT must print what they
# printed when committed. pytest exits 5 when it collects nothing (no notebooks yet).
notebooks: $(INSTALLED) dot
	@$(BIN)/pytest -p no:cacheprovider --nbval-lax --nbval-current-env \
	  --nbval-cell-timeout=120 --nbval-kernel-startup-timeout=120 \
	  $$(test -f notebooks/nbval_sanitize.cfg && echo --nbval-sanitize-with notebooks/nbval_sanitize.cfg) \
	  notebooks/; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "nbval: no notebooks in notebooks/ yet"; else exit $$rc; fi

# Benchmarks are scripts, not tests: each prints ratios measured side by side in one run
# (benchmarks/README.md). They need libcoap's example programs, installed here when root.
bench: $(INSTALLED)
	@scripts/ensure-libcoap
	@for script in benchmarks/*.py; do \
	  echo "== $$script"; $(BIN)/python "$$script" || exit 1; \
	done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
