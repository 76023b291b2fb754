"""What an installation gives a user: ``cloudfs --version`` (and the same
versions in every mount's log and status), shell completion, the man page,
and ``make install``'s commands and systemd units."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pyfuse3
import pytest

from tests.mount.conftest import Drive, run_cloudfs

REPO = Path(__file__).resolve().parents[2]
#: the environment running these tests has cloudfs installed: ``make install-files``
#: links that one rather than building another (``test_make_install_from_scratch`` does)
VENV = Path(sys.executable).parent.parent
UNITS = {"cloudfs@.service": "lib/systemd/user", "cloudfs-system@.service": "lib/systemd/system"}
needs_systemd_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                           reason="systemd-analyze not installed (apt-get install systemd)")


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


@dataclass
class Install:
    prefix: Path
    sbin: Path
    app: Path

    @property
    def variables(self) -> list[str]:
        return [f"PREFIX={self.prefix}", f"MOUNT_HELPER_DIR={self.sbin}", f"APPDIR={self.app}"]

    def make(self, target: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["make", "-s", "-C", str(REPO), target, *self.variables], capture_output=True,
                                text=True, timeout=1800, env=make_env())
        assert result.returncode == 0, f"make {target} failed:\n{result.stdout}{result.stderr}"
        return result


def make_env() -> dict[str, str]:
    # under `make test`, the outer make's flags and variables would reach this make too
    return {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}


def verify_unit(install: Install, unit: str) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` of an instance of the installed template: it
    checks the unit's syntax, that ExecStart's program exists and is
    executable, and that the man page in Documentation= is found."""
    instance = install.prefix / UNITS[unit] / unit.replace("@", "@work")
    env = dict(os.environ, MANPATH=f"{install.prefix / 'share/man'}:")  # trailing ":": and the usual places
    return subprocess.run(["systemd-analyze", "verify", str(instance)], capture_output=True, text=True,
                          timeout=120, env=env)


def assert_units_verify(install: Install) -> None:
    for unit, unit_dir in UNITS.items():
        text = (install.prefix / unit_dir / unit).read_text()
        assert f"ExecStart={install.prefix}/bin/cloudfs mount %i --foreground" in text, text
        result = verify_unit(install, unit)
        assert result.returncode == 0 and "cloudfs" not in result.stderr, result.stderr


@needs_systemd_analyze
def test_make_install_places_commands_units_man_page_and_completions(tmp_path: Path):
    if not (VENV / "bin" / "cloudfs").exists():
        pytest.skip(f"cloudfs is not installed in {VENV}")
    install = Install(tmp_path / "prefix", tmp_path / "sbin", VENV)
    install.make("install-files")
    prefix = install.prefix
    assert (prefix / "bin/cloudfs").resolve() == (VENV / "bin/cloudfs").resolve()
    # where mount(8) looks for the helper of type cloudfs
    assert (install.sbin / "mount.cloudfs").resolve() == (VENV / "bin/mount.cloudfs").resolve()
    for name in ("man/man1/cloudfs.1", "bash-completion/completions/cloudfs", "zsh/site-functions/_cloudfs"):
        assert (prefix / "share" / name).read_text() == (REPO / "share" / name).read_text(), name
    assert_units_verify(install)

    # the check has teeth: a unit naming a program that is not there fails
    (prefix / "bin/cloudfs").unlink()
    result = verify_unit(install, "cloudfs-system@.service")
    assert result.returncode != 0 and f"{prefix}/bin/cloudfs" in result.stderr, result.stderr

    out = install.make("uninstall").stdout
    assert "left alone" in out and (VENV / "bin/cloudfs").exists()  # not made by make install: kept
    left = [path for top in (prefix, install.sbin) for path in top.rglob("*") if not path.is_dir()]
    assert left == []


def test_make_install_files_needs_the_app_installed(tmp_path: Path):
    result = subprocess.run(["make", "-s", "-C", str(REPO), "install-files", f"PREFIX={tmp_path}",
                             f"APPDIR={tmp_path / 'nothing'}", f"MOUNT_HELPER_DIR={tmp_path / 'sbin'}"],
                            capture_output=True, text=True, timeout=60, env=make_env())
    assert result.returncode != 0
    assert f"cloudfs: {tmp_path / 'nothing'}/bin/cloudfs is missing (run: make install)" in result.stderr
    assert not (tmp_path / "bin").exists()


@pytest.mark.slow
@needs_systemd_analyze
def test_make_install_from_scratch(tmp_path: Path):
    """The whole ``make install``: a virtualenv of its own with cloudfs built
    from this checkout (pyfuse3 from source: minutes), then the same layout."""
    install = Install(tmp_path / "prefix", tmp_path / "sbin", tmp_path / "prefix/lib/cloudfs")
    install.make("install")
    version = subprocess.run([str(install.prefix / "bin/cloudfs"), "--version"], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    assert version.startswith(f"cloudfs {metadata.version('cloudfs')} (pyfuse3 ")
    # the wheel's data files: what pip and pipx users get in the environment's share/
    assert (install.app / "share/man/man1/cloudfs.1").exists()
    assert (install.app / "share/bash-completion/completions/cloudfs").exists()
    assert_units_verify(install)
    install.make("uninstall")
    assert not install.app.exists() and not (install.prefix / "bin/cloudfs").exists()


@pytest.mark.slow
def test_wheel_carries_metadata_license_man_page_and_completions(tmp_path: Path):
    # pip's PEP 517 build is the one `python -m build` and pipx run (in an isolated environment)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(REPO)],
                   check=True, timeout=600, capture_output=True)
    (wheel,) = tmp_path.glob("cloudfs-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = archive.read(info).decode()
    version = metadata.version("cloudfs")
    for name in ("share/man/man1/cloudfs.1", "share/bash-completion/completions/cloudfs",
                 "share/zsh/site-functions/_cloudfs"):
        assert f"cloudfs-{version}.data/data/{name}" in names, name
    assert f"cloudfs-{version}.dist-info/licenses/LICENSE" in names
    assert f"Version: {version}" in meta and "License-Expression: MIT" in meta
    assert "Classifier: Topic :: System :: Filesystems" in meta and "Requires-Dist: shtab" in meta
