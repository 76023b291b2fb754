"""The token store file (cloudfs.client.tokenstore)."""

import json
import os
import stat
import time

from cloudfs.client.tokenstore import StoredLogin, TokenStore, default_path, normalize_url


def login(url="https://cloud.example/", user="Me@Example.com", refresh="rt-1", **kw):
    return StoredLogin(url=url, user=user, refresh_token=refresh, refresh_expires=time.time() + 3600,
                       access_token="at-1", access_expires=time.time() + 60, **kw)


def test_default_path_is_in_the_user_state_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_path() == tmp_path / "cloudfs" / "tokens.json"


def test_save_and_load_roundtrip(tmp_path):
    store = TokenStore(tmp_path / "state" / "tokens.json")
    assert store.load("https://cloud.example", "me@example.com") is None
    store.save(login())
    got = store.load("HTTPS://Cloud.Example", "me@example.com")
    assert got is not None and got.refresh_token == "rt-1" and got.access_token == "at-1"
    assert got.user == "Me@Example.com"


def test_file_and_dir_modes(tmp_path):
    path = tmp_path / "state" / "tokens.json"
    old = os.umask(0o022)
    try:
        TokenStore(path).save(login())
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    doc = json.loads(path.read_text())
    assert doc["format"] == 1 and len(doc["logins"]) == 1


def test_keyed_by_url_and_user(tmp_path):
    store = TokenStore(tmp_path / "tokens.json")
    store.save(login(user="a@x", refresh="rt-a", saved_at=1.0))
    store.save(login(user="b@x", refresh="rt-b", saved_at=2.0))
    store.save(login(url="https://other", user="a@x", refresh="rt-other"))
    assert store.load("https://cloud.example", "a@x").refresh_token == "rt-a"
    assert store.load("https://cloud.example", "b@x").refresh_token == "rt-b"
    assert store.load("https://other", "a@x").refresh_token == "rt-other"
    # no user given: the most recently saved login for that server
    assert store.load("https://cloud.example").refresh_token == "rt-b"
    store.save(login(user="a@x", refresh="rt-a2"))  # replaces, does not duplicate
    assert store.load("https://cloud.example", "a@x").refresh_token == "rt-a2"
    assert len(json.loads((tmp_path / "tokens.json").read_text())["logins"]) == 3


def test_expired_refresh_token_is_not_offered(tmp_path):
    store = TokenStore(tmp_path / "tokens.json")
    store.save(StoredLogin(url="https://h", user="a@x", refresh_token="old", refresh_expires=time.time() - 1))
    assert store.load("https://h", "a@x") is None


def test_delete(tmp_path):
    store = TokenStore(tmp_path / "tokens.json")
    store.save(login(user="a@x"))
    store.save(login(user="b@x"))
    assert store.delete("https://cloud.example", "a@x")
    assert store.load("https://cloud.example", "a@x") is None
    assert store.delete("https://cloud.example")
    assert store.load("https://cloud.example") is None
    assert not store.delete("https://cloud.example")


def test_unsafe_or_corrupt_files_are_ignored(tmp_path):
    path = tmp_path / "tokens.json"
    store = TokenStore(path)
    store.save(login())
    path.chmod(0o644)
    assert store.load("https://cloud.example", "me@example.com") is None
    path.write_text("{not json")
    path.chmod(0o600)
    assert store.load("https://cloud.example", "me@example.com") is None
    path.write_text(json.dumps({"format": 99}))
    assert store.load("https://cloud.example", "me@example.com") is None
    store.save(login())  # a broken file is replaced by a good one
    assert store.load("https://cloud.example", "me@example.com") is not None


def test_repr_hides_tokens():
    assert "rt-1" not in repr(login()) and "at-1" not in repr(login())


def test_normalize_url():
    assert normalize_url("HTTPS://Host:8443/") == "https://host:8443"
    assert normalize_url("http://h/sub/Path/") == "http://h/sub/Path"


def test_a_backend_keeps_its_own_credential_shape(tmp_path):
    """A login that is neither a refresh token nor a cookie (an app key acting
    for a user, say) is stored in the shape its backend chose, kept secret."""
    store = TokenStore(tmp_path / "tokens.json")
    own = StoredLogin(url="https://drive.example", user="u-1", refresh_token="",
                      credential={"app_id": "app-7", "app_secret": "s3cr3t-value", "user_id": "u-1"},
                      credential_expires=time.time() + 3600, saved_at=time.time())
    assert "s3cr3t-value" not in repr(own)
    store.save(own)
    got = store.load("https://drive.example", "u-1")
    assert got is not None and got.usable and dict(got.credential) == dict(own.credential)
    # an expired one is not offered
    store.save(StoredLogin(url="https://drive.example", user="u-2", refresh_token="",
                           credential={"token": "t"}, credential_expires=time.time() - 1))
    assert store.load("https://drive.example", "u-2") is None
    # a record of another shape than names to strings is ignored, not a crash
    doc = json.loads((tmp_path / "tokens.json").read_text())
    next(iter(doc["logins"].values()))["credential"] = {"token": 5}
    (tmp_path / "tokens.json").write_text(json.dumps(doc))
    assert store.load("https://drive.example", "u-1") is None


def test_a_login_without_a_credential_writes_none(tmp_path):
    store = TokenStore(tmp_path / "tokens.json")
    store.save(login())
    record = next(iter(json.loads((tmp_path / "tokens.json").read_text())["logins"].values()))
    assert "credential" not in record  # the format stays as it was for token and cookie logins
