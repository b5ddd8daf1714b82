# The two commands a new user runs after cloning: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(VENV)/bin/pip
STAMP   = $(VENV)/.installed
DEVSTAMP= $(VENV)/.installed-dev
TORCH  ?= torch==2.13.0

.PHONY: run test setup setup-dev browser lint clean bench

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# torch first, pinned, so nothing pulls a multi-GB CUDA build (GPU users install their own).
$(STAMP): pyproject.toml | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e .
	touch $@

$(DEVSTAMP): pyproject.toml $(STAMP)
	$(PIP) install --quiet -e ".[dev]"
	touch $@

setup: $(STAMP)
setup-dev: $(DEVSTAMP) browser

# Debian's Chromium and a CJK font for the browser tests (never a downloaded browser build).
BROWSER_PKGS = chromium fonts-wqy-microhei
browser:
	@if command -v chromium >/dev/null 2>&1 && [ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PKGS) >/dev/null; \
	else echo "browser tests need Debian packages: sudo apt-get install $(BROWSER_PKGS) (they skip without)"; fi

run: setup
	$(VENV)/bin/yuqing demo

test: setup-dev
	$(PY) -m pytest -q

bench: setup-dev
	$(PY) -m bench

clean:
	rm -rf $(VENV) data .pytest_cache
