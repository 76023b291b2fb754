# cloudfs: two commands matter. `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# pyfuse3 builds against libfuse3; the tests drive rsync, git, tar and curl
SYSTEM_PACKAGES := fuse3 libfuse3-dev pkg-config rsync git tar curl
# Standard stress tools the hardening tests use when the archive has them (xfslibs-dev:
# headers to build fsstress from xfstests' source, see tests/mount/test_stress.py)
# (installed when root; a missing one is skipped, never fatal)
STRESS_PACKAGES := fio dbench stress-ng xfslibs-dev
# Programs that check what `make install` installs: zsh reads the zsh completion,
# systemd-analyze verifies the units (optional like the stress tools)
CHECK_PACKAGES := zsh systemd

.PHONY: setup system-packages demo test test-slow bench share clean

setup: system-packages $(STAMP)

system-packages:
	@installed() { dpkg-query -W -f='$${Status}' "$$1" 2>/dev/null | grep -q "install ok installed"; }; \
	missing=""; for p in $(SYSTEM_PACKAGES); do installed $$p || missing="$$missing $$p"; done; \
	optional=""; for p in $(STRESS_PACKAGES) $(CHECK_PACKAGES); do installed $$p || optional="$$optional $$p"; done; \
	if [ -n "$$missing$$optional" ] && [ "$$(id -u)" = 0 ]; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq || true; \
	    if [ -n "$$missing" ]; then \
	        echo "installing system packages:$$missing"; \
	        apt-get install -y -qq --no-install-recommends $$missing || exit 1; \
	    fi; \
	    for p in $$optional; do \
	        apt-get install -y -qq --no-install-recommends $$p >/dev/null 2>&1 || echo "note: $$p is not available; its tests will be skipped"; \
	    done; \
	elif [ -n "$$missing" ]; then \
	    echo "cloudfs needs system packages:$$missing"; \
	    echo "run: sudo apt-get install -y$$missing"; exit 1; \
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

# every benchmark, each figure beside its baseline from the same run: one table
bench: setup
	cd bench && ../$(PY) all.py

# the man page and shell completions under share/, regenerated from the argument
# parser (committed; a test fails when they fall behind it)
share: setup
	$(PY) -m cloudfs.cli.sharefiles

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
