# The only entry points a newcomer needs: `make app` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CACHE ?= $(or $(MMREC_CACHE_DIR),cache)
PORT ?= 8501
# Exact versions tested (pip constraints); `make test LOCK=` resolves freely from pyproject's ranges.
LOCK ?= constraints.txt
PIP_INSTALL = $(PY) -m pip install --quiet $(if $(LOCK),-c $(LOCK))

export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: app test bench lint demo venv clean lock

venv: $(STAMP)

# (Re)install when the project's metadata changes; `make test` always refreshes the editable install.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PIP_INSTALL) -e '.[test,distributed]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m core datasets describe demo --cache-dir $(CACHE)

app: $(STAMP) demo
	$(PY) -m app_pages --server.address 127.0.0.1 --server.port $(PORT) \
		--server.headless true --browser.gatherUsageStats false

test: $(STAMP)
	$(PIP_INSTALL) -e '.[test,distributed]'
	$(PY) -m ruff check core app_pages tests bench app.py
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m bench

lint: $(STAMP)
	$(PY) -m ruff check core app_pages tests bench app.py

# Re-resolve every dependency from pyproject.toml in a throwaway venv and write the lock.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e '.[test,distributed]'
	{ sed -n '1,3p' $(LOCK) 2>/dev/null; \
	  echo "# Python $$(.lock-venv/bin/python -c 'import platform; print(platform.python_version())'), $$(uname -m), resolved $$(date +%Y-%m-%d)."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf .lock-venv
	@echo "wrote $(LOCK); run \`make test\` before committing it"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
