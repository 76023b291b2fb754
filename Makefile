# cloudfs: two commands matter. `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SYSTEM_PACKAGES := fuse3 libfuse3-dev pkg-config
# Tools the stress tests drive when the archive has them (never fatal if missing).
STRESS_PACKAGES := fio dbench fs-mark stress-ng rsync git

.PHONY: setup system-packages demo test test-slow bench clean

setup: system-packages $(STAMP)

system-packages:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then \
	        echo "installing system packages:$$missing"; \
	        export DEBIAN_FRONTEND=noninteractive; \
	        apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	    else \
	        echo "cloudfs needs system packages:$$missing"; \
	        echo "run: sudo apt-get install -y$$missing"; exit 1; \
	    fi; \
	fi

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/cloudfs demo

test: setup
	$(PY) -m pytest -m "not slow"

test-slow: setup
	$(PY) -m pytest -m slow

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
