# cloudfs: two commands matter. `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# pyfuse3 builds against libfuse3; the tests drive rsync, git, tar and curl (and strace: what git reads)
SYSTEM_PACKAGES := fuse3 libfuse3-dev pkg-config rsync git tar curl strace
# Standard stress tools the hardening tests use when the archive has them (xfslibs-dev:
# headers to build fsstress from xfstests' source, see tests/mount/test_stress.py)
# (installed when root; a missing one is skipped, never fatal)
STRESS_PACKAGES := fio dbench stress-ng xfslibs-dev
# Programs that check what `make install` installs: zsh reads the zsh completion,
# systemd-analyze verifies the units (optional like the stress tools)
CHECK_PACKAGES := zsh systemd

# `make install`: system-wide, for the units and fstab. cloudfs and its dependencies
# go into a virtualenv of their own ($(APPDIR)), never into the system's Python;
# the commands are linked where PATH, the units and mount(8) look for them.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
APPDIR ?= $(PREFIX)/lib/cloudfs
# mount(8) runs helpers from /sbin only (/sbin/mount.TYPE), never from PATH
MOUNT_HELPER_DIR ?= /sbin
DATADIR ?= $(PREFIX)/share
SYSTEM_UNIT_DIR ?= $(PREFIX)/lib/systemd/system
USER_UNIT_DIR ?= $(PREFIX)/lib/systemd/user
# building pyfuse3 needs these (and a C compiler and Python headers)
BUILD_PACKAGES := fuse3 libfuse3-dev pkg-config gcc python3-dev python3-venv
# tells `make uninstall` that $(APPDIR) is ours to delete
APP_MARK := .cloudfs-make-install

.PHONY: setup system-packages demo check test test-slow bench share clean install install-app install-files uninstall

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

# `make demo BACKEND=koodrive` serves and mounts a KooDrive drive instead
BACKEND ?= cloudreve
demo: setup
	$(VENV)/bin/cloudfs demo --backend $(BACKEND)

# the boundaries of the backend contract (import-linter contracts in pyproject.toml:
# fs/upload/cache import no backend, the client nothing above it, the servers no
# client) and the types (mypy on cloudfs/), before any test runs
check: setup
	$(VENV)/bin/lint-imports
	$(PY) -m mypy

test: check
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

install: install-app install-files

install-app:
	@pkg-config --exists fuse3 2>/dev/null || { echo "cloudfs: building pyfuse3 needs libfuse3 (run: sudo apt-get install -y $(BUILD_PACKAGES))" >&2; exit 1; }
	$(PYTHON) -m venv $(APPDIR)
	$(APPDIR)/bin/python -m pip install -q --upgrade pip
	$(APPDIR)/bin/python -m pip install -q --upgrade .
	@touch $(APPDIR)/$(APP_MARK)

# everything but the virtualenv: links to its commands, units naming them, man page, completions
install-files:
	@test -x $(APPDIR)/bin/cloudfs || { echo "cloudfs: $(APPDIR)/bin/cloudfs is missing (run: make install)" >&2; exit 1; }
	install -d $(BINDIR) $(MOUNT_HELPER_DIR) $(SYSTEM_UNIT_DIR) $(USER_UNIT_DIR) \
	    $(DATADIR)/man/man1 $(DATADIR)/bash-completion/completions $(DATADIR)/zsh/site-functions
	ln -sfn $(APPDIR)/bin/cloudfs $(BINDIR)/cloudfs
	ln -sfn $(APPDIR)/bin/mount.cloudfs $(MOUNT_HELPER_DIR)/mount.cloudfs
	sed 's|/usr/local/bin/cloudfs|$(BINDIR)/cloudfs|g' systemd/cloudfs@.service > $(USER_UNIT_DIR)/cloudfs@.service
	sed 's|/usr/local/bin/cloudfs|$(BINDIR)/cloudfs|g' systemd/cloudfs-system@.service > $(SYSTEM_UNIT_DIR)/cloudfs-system@.service
	chmod 644 $(USER_UNIT_DIR)/cloudfs@.service $(SYSTEM_UNIT_DIR)/cloudfs-system@.service
	install -m 644 share/man/man1/cloudfs.1 $(DATADIR)/man/man1/cloudfs.1
	install -m 644 share/bash-completion/completions/cloudfs $(DATADIR)/bash-completion/completions/cloudfs
	install -m 644 share/zsh/site-functions/_cloudfs $(DATADIR)/zsh/site-functions/_cloudfs
	@if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi

uninstall:
	rm -f $(BINDIR)/cloudfs $(MOUNT_HELPER_DIR)/mount.cloudfs \
	    $(USER_UNIT_DIR)/cloudfs@.service $(SYSTEM_UNIT_DIR)/cloudfs-system@.service \
	    $(DATADIR)/man/man1/cloudfs.1 $(DATADIR)/bash-completion/completions/cloudfs \
	    $(DATADIR)/zsh/site-functions/_cloudfs
	@if [ -e $(APPDIR)/$(APP_MARK) ]; then echo "rm -rf $(APPDIR)"; rm -rf $(APPDIR); \
	else echo "note: $(APPDIR) was not made by make install; left alone"; fi

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
