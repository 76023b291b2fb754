"""What an installation gives a user: ``cloudfs --version`` (and the same
versions in every mount's log and status), shell completion, the man page,
and ``make install``'s commands and systemd units."""

from __future__ import annotations

import json
import re
from importlib import metadata

import pyfuse3

from tests.mount.conftest import Drive, run_cloudfs


def test_version_names_cloudfs_pyfuse3_libfuse_and_python():
    result = run_cloudfs("--version", check=True)
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and result.stderr == "", result
    line = lines[0]
    assert line.startswith(f"cloudfs {metadata.version('cloudfs')} ")
    assert f"pyfuse3 {pyfuse3.__version__}" in line
    assert re.search(r"libfuse 3\.\d+", line), line
    assert re.search(r"Python 3\.\d+\.\d+", line), line


def test_mount_log_and_status_name_the_versions(drive: Drive):
    version = run_cloudfs("--version", check=True).stdout.strip()
    # the first line of the background mount's log, before anything else it did
    first = drive.log().splitlines()[0]
    assert version in first and drive.server.url in first, first
    status = json.loads(run_cloudfs("status", str(drive.path), "--json", check=True).stdout)[0]
    found = status["versions"]
    assert version == (f"cloudfs {found['cloudfs']} (pyfuse3 {found['pyfuse3']}, libfuse {found['libfuse']}, "
                       f"Python {found['python']})")
