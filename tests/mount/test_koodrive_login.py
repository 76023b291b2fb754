"""Mounting KooDrive with the enterprise app key (AppId + AppSecret, acting for
a user id): from the config file's remote or the environment, never asking
for a password (the mount used to prompt for one, and fail without a terminal)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudfs.server.testing import RunningServer, start_server
from tests.mount.conftest import force_unmount, run_cloudfs
from tests.server.koohelpers import KooApi

#: the emulator's default app key
APP_ID, APP_SECRET = "cloudfs-demo-app", "cloudfs-demo-app-secret"


@pytest.fixture(scope="module")
def kd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_server(tmp_path_factory.mktemp("kd-app"), dialect="koodrive") as srv:
        yield srv


@pytest.fixture(scope="module")
def user_id(kd: RunningServer) -> str:
    with KooApi(kd) as api:
        api.mkdir("made-by-the-carrier-login")
        return api.user_id


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Path]:
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "cloudfs" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def mount_and_list(remote: str, mnt: Path, *extra: str) -> list[str]:
    mnt.mkdir(exist_ok=True)
    result = run_cloudfs("mount", remote, str(mnt), *extra)
    try:
        assert result.returncode == 0, result.stderr
        (mnt / "written-with-the-app-key").write_text("signed")
        return sorted(os.listdir(mnt))
    finally:
        umount = run_cloudfs("umount", str(mnt), timeout=120)
        force_unmount(mnt)
        assert umount.returncode == 0, umount.stderr


def test_app_key_inline_in_the_config_file(kd: RunningServer, user_id: str, config: Path, tmp_path: Path) -> None:
    config.write_text(f'[remotes.kd]\nurl = "{kd.url}"\nuser = "{user_id}"\nbackend = "koodrive"\n'
                      f'mountpoint = "{tmp_path / "mnt"}"\napp_id = "{APP_ID}"\napp_secret = "{APP_SECRET}"\n')
    config.chmod(0o644)
    refused = run_cloudfs("mount", "kd")
    assert refused.returncode != 0 and "chmod 600" in refused.stderr  # a secret others can read
    config.chmod(0o600)
    assert "made-by-the-carrier-login" in mount_and_list("kd", tmp_path / "mnt")
    with KooApi(kd) as api:
        assert "written-with-the-app-key" in [f["fileName"] for f in api.page()["files"]]


def test_app_key_file_named_by_the_config_file(kd: RunningServer, user_id: str, config: Path,
                                               tmp_path: Path) -> None:
    key = tmp_path / "app.toml"
    key.write_text(f'app_id = "{APP_ID}"\napp_secret = "{APP_SECRET}"\nuser_id = "{user_id}"\n')
    config.write_text(f'[remotes.kd]\nurl = "{kd.url}"\napp_key_file = "{key}"\n')
    assert "made-by-the-carrier-login" in mount_and_list("kd", tmp_path / "mnt")


def test_app_key_from_the_environment_asks_no_password(kd: RunningServer, user_id: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDFS_KOODRIVE_APP_ID", APP_ID)  # run_cloudfs passes the environment on
    monkeypatch.setenv("CLOUDFS_KOODRIVE_APP_SECRET", APP_SECRET)
    assert "made-by-the-carrier-login" in mount_and_list(kd.url, tmp_path / "mnt", "--user", user_id)


def test_a_wrong_app_secret_in_the_config_file_is_refused(kd: RunningServer, user_id: str, config: Path,
                                                          tmp_path: Path) -> None:
    config.write_text(f'[remotes.kd]\nurl = "{kd.url}"\nuser = "{user_id}"\n'
                      f'app_id = "{APP_ID}"\napp_secret = "not-the-secret"\n')
    config.chmod(0o600)
    (tmp_path / "mnt").mkdir()
    result = run_cloudfs("mount", "kd", str(tmp_path / "mnt"))
    force_unmount(tmp_path / "mnt")
    assert result.returncode != 0
    assert "not-the-secret" not in result.stderr
