# The only entry points a newcomer needs: `make app` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CACHE ?= $(or $(MMREC_CACHE_DIR),cache)
PORT ?= 8501

export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: app test bench lint demo venv clean

venv: $(STAMP)

# (Re)install when the project's metadata changes; `make test` always refreshes the editable install.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m core datasets describe demo --cache-dir $(CACHE)

app: $(STAMP) demo
	$(VENV)/bin/streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT) \
		--server.headless true --browser.gatherUsageStats false

test: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m ruff check core app_pages tests bench app.py
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m bench

lint: $(STAMP)
	$(PY) -m ruff check core app_pages tests bench app.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
