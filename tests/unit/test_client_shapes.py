"""Cloudreve v4 shapes, envelope decoding and path checks (pure functions)."""

import base64
import errno
import json
import time

import pytest

from cloudfs.client import envelope
from cloudfs.client.paths import check_name, join, normalize, split
from cloudfs.client.v4_shapes import entry_from, from_uri, parse_time_ns, session_from, to_uri, tokens_from
from cloudfs.errors import CloudfsError, NameTooLong, ProtocolError
from cloudfs.client.cloudreve_codes import CloudreveError


@pytest.mark.parametrize(
    ("path", "uri"),
    [
        ("/", "cloudreve://my/"),
        ("/a", "cloudreve://my/a"),
        ("/docs/a b.txt", "cloudreve://my/docs/a%20b.txt"),
        ("/x/100%#?.txt", "cloudreve://my/x/100%25%23%3F.txt"),
        ("/ünï/c+d", "cloudreve://my/%C3%BCn%C3%AF/c%2Bd"),
        ("/(it's)!*~", "cloudreve://my/(it's)!*~"),
    ],
)
def test_uri_roundtrip(path, uri):
    assert to_uri(path) == uri
    assert from_uri(uri) == path


def test_from_uri_variants():
    assert from_uri("cloudreve://my") == "/"
    assert from_uri("cloudreve://abc@my/x/y/") == "/x/y"
    with pytest.raises(ProtocolError):
        from_uri("https://example")


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("2024-05-06T07:08:09.123456789+00:00", 1714979289_123456789),
        ("2024-05-06T15:08:09.5+08:00", 1714979289_500000000),
        ("2024-05-06T07:08:09-0000", 1714979289_000000000),
    ],
)
def test_parse_time(text, ns):
    assert parse_time_ns(text) == ns


@pytest.mark.parametrize("bad", ["", "yesterday", None, 12, "2024-13-45T00:00:00Z"])
def test_parse_time_rejects_garbage(bad):
    with pytest.raises(ProtocolError):
        parse_time_ns(bad)


FILE = {
    "type": 0, "id": "f1", "name": "a.txt", "created_at": "2024-01-01T00:00:00Z",
    "updated_at": "2024-01-02T00:00:00.000000001Z", "size": 42, "metadata": {"dav:x": "1"},
    "path": "cloudreve://my/d/a.txt", "primary_entity": "e9",
}


def test_entry_from_file():
    e = entry_from(FILE)
    assert (e.file_id, e.path, e.is_dir, e.size, e.version) == ("f1", "/d/a.txt", False, 42, "e9")
    assert e.mtime_ns == 1704153600_000000001 and e.ctime_ns == 1704067200_000000000
    assert e.metadata == {"dav:x": "1"} and not e.uploading
    assert entry_from(FILE, parent="/other").path == "/other/a.txt"
    assert entry_from(FILE, "/given").path == "/given"


def test_entry_from_folder_and_uploading():
    folder = dict(FILE, type=1, size=0, metadata=None, primary_entity="")
    e = entry_from(folder)
    assert e.is_dir and e.version == "" and e.metadata == {}
    up = entry_from(dict(FILE, metadata={"sys:upload_session_id": "s"}))
    assert up.uploading


@pytest.mark.parametrize("bad", [None, [], {"type": 0}, dict(FILE, size=-1), dict(FILE, id=3),
                                 dict(FILE, metadata=[1]), dict(FILE, type="file")])
def test_entry_from_malformed(bad):
    with pytest.raises(ProtocolError):
        entry_from(bad, "/x")


def _jwt(claims):
    seg = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJIUzI1NiJ9.{seg}.c2ln"


def test_tokens_from_moves_expiry_onto_local_clock():
    # the server's clock is an hour behind ours; the token lives 600 s
    now = 1_700_000_000.0
    server_now = now - 3600
    token = {
        "access_token": _jwt({"nbf": server_now, "exp": server_now + 600}),
        "refresh_token": "r" * 20,
        "access_expires": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(server_now + 600)),
        "refresh_expires": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(server_now + 86400)),
    }
    t = tokens_from(token, received_at=now)
    assert t.access_expires == pytest.approx(now + 600)
    assert t.refresh_expires == pytest.approx(now + 86400)
    assert not t.refresh_due(now) and t.refresh_due(now + 590)


def test_tokens_from_without_jwt_claims():
    token = {"access_token": "opaque", "refresh_token": "opaque2",
             "access_expires": "2030-01-01T00:00:00Z", "refresh_expires": "2030-01-02T00:00:00Z"}
    assert tokens_from(token).access_expires == parse_time_ns("2030-01-01T00:00:00Z") / 1e9
    with pytest.raises(ProtocolError):
        tokens_from({"access_token": 1})


def test_session_from():
    s = session_from({"session_id": "s1", "chunk_size": 1024, "expires": 2_000_000_000,
                      "storage_policy": {"type": "local", "chunk_concurrency": 3}}, "/a", 5000)
    assert (s.session_id, s.chunk_size, s.concurrency, s.through_server) == ("s1", 1024, 3, True)
    s3 = session_from({"session_id": "s2", "chunk_size": 0, "storage_policy": {"type": "s3"},
                       "upload_urls": ["https://bucket"]}, "/a", 1)
    assert not s3.through_server
    relay = session_from({"session_id": "s3", "storage_policy": {"type": "remote", "relay": True}}, "/a", 1)
    assert relay.through_server
    with pytest.raises(ProtocolError):
        session_from({"chunk_size": 1}, "/a", 1)


def test_envelope_parse_and_errors():
    env = envelope.parse(b'{"code":0,"data":{"a":1},"msg":""}', "t")
    assert env.ok and env.unwrap() == {"a": 1}
    bad = envelope.parse(json.dumps({
        "code": 40081, "msg": "One or more operation failed", "correlation_id": "cid",
        "aggregated_error": {"cloudreve://my/a": {"code": 40016, "msg": "Path not exist"}}}).encode(), "t")
    err = bad.error()
    assert isinstance(err, CloudreveError) and err.errno == errno.ENOENT and err.correlation_id == "cid"
    assert err.aggregated["cloudreve://my/a"].code == 40016
    with pytest.raises(CloudreveError):
        bad.unwrap()


@pytest.mark.parametrize("body", [b"", b"<html>502 Bad Gateway</html>", b'{"code":0', b'"4.1.0"',
                                  b'{"data":1}', b'{"code":true}', b"\xff\xfe"])
def test_envelope_garbage_is_protocol_error(body):
    with pytest.raises(ProtocolError):
        envelope.parse(body, "t")


def test_path_checks():
    assert normalize("a//b/") == "/a/b"
    assert normalize("/") == "/"
    assert split("/a/b") == ("/a", "b") and split("/a") == ("/", "a")
    assert join("/", "x") == "/x" and join("/a", "x") == "/a/x"
    check_name("é" * 127)  # 254 bytes
    with pytest.raises(NameTooLong) as info:
        check_name("é" * 128)  # 256 bytes, 128 characters
    assert info.value.errno == errno.ENAMETOOLONG
    with pytest.raises(NameTooLong):
        normalize("/ok/" + "x" * 256 + "/y")
    for bad in ("", ".", "..", "a/b"):
        with pytest.raises(CloudfsError) as info2:
            check_name(bad)
        assert info2.value.errno == errno.EINVAL


def test_detection_messages():
    from cloudfs.client.detect import Probe, describe

    url = "http://x"
    assert describe(url, "/api/v4/site/ping", Probe(404, "text/plain", "", None)) == \
        "http://x answered HTTP 404 for /api/v4/site/ping: not a Cloudreve server"
    assert "with text/html, not a Cloudreve response" in describe(url, "/p", Probe(200, "text/html", "", None))
    assert "(redirect to https://x/login)" in describe(url, "/p", Probe(302, "text/html", "https://x/login", None))
