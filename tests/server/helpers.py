"""Small HTTP helpers for the server conformance tests (real HTTP via httpx)."""

from __future__ import annotations

import hashlib
from typing import Any, Self
from urllib.parse import quote

import httpx

from cloudfs.server.testing import RunningServer
from cloudfs.server.testing.demo_tree import LARGE_NAME, LARGE_SIZE, demo_bytes

API = "/api/v4"


def enc(name: str) -> str:
    """encodeURIComponent."""
    return quote(name, safe="-_.!~*'()")


def uri(path: str, fs: str = "my") -> str:
    parts = [p for p in path.split("/") if p]
    return f"cloudreve://{fs}" + ("/" + "/".join(enc(p) for p in parts) if parts else "/")


def large_demo_sha256() -> str:
    """The SHA-256 that the demo tree's large file must have."""
    expected = hashlib.sha256()
    for piece in demo_bytes(("Large", LARGE_NAME), LARGE_SIZE):
        expected.update(piece)
    return expected.hexdigest()


def streamed_sha256(session: HttpSession, url: str) -> str:
    """The SHA-256 of what ``url`` serves, hashed as it comes (large files)."""
    got = hashlib.sha256()
    with session.http.stream("GET", url) as resp:
        for block in resp.iter_bytes():
            got.update(block)
    return got.hexdigest()


class HttpSession:
    """An HTTP client against one server, closed with the ``with`` block
    (what the sessions of every dialect's tests share)."""

    def __init__(self, server: RunningServer, timeout: float = 60.0) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Api(HttpSession):
    """A logged-in session against one server."""

    def __init__(self, server: RunningServer, login: bool = True, timeout: float = 60.0) -> None:
        super().__init__(server, timeout)
        self.token: str | None = None
        self.refresh_token: str | None = None
        if login:
            self.login()

    def login(self, email: str | None = None, password: str | None = None) -> dict[str, Any]:
        body = self.post("/session/token", {"email": email or self.server.email,
                                            "password": password or self.server.password}, auth=False)
        assert body["code"] == 0, body
        self.token = body["data"]["token"]["access_token"]
        self.refresh_token = body["data"]["token"]["refresh_token"]
        return body

    def headers(self, auth: bool = True) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if auth and self.token else {}

    def request(self, method: str, path: str, *, json: Any = None, params: Any = None, content: Any = None,
                headers: dict[str, str] | None = None, auth: bool = True) -> httpx.Response:
        h = self.headers(auth)
        h.update(headers or {})
        return self.http.request(method, API + path, json=json, params=params, content=content, headers=h)

    def call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        resp = self.request(method, path, **kw)
        assert resp.status_code == 200, (resp.status_code, resp.text)
        return resp.json()

    def get(self, path: str, params: Any = None, **kw: Any) -> dict[str, Any]:
        return self.call("GET", path, params=params, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> dict[str, Any]:
        return self.call("POST", path, json=body, **kw)

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        body = self.call(method, path, **kw)
        assert body["code"] == 0, body
        return body.get("data")

    # --- conveniences ---------------------------------------------------------------
    def mkdir(self, path: str) -> dict[str, Any]:
        return self.ok("POST", "/file/create", json={"uri": uri(path), "type": "folder"})

    def touch(self, path: str) -> dict[str, Any]:
        return self.ok("POST", "/file/create", json={"uri": uri(path), "type": "file"})

    def info(self, path: str, fs: str = "my") -> dict[str, Any]:
        return self.get("/file/info", {"uri": uri(path, fs)})

    def ls(self, path: str = "/", fs: str = "my", **params: Any) -> dict[str, Any]:
        params.setdefault("page_size", 2000)
        return self.ok("GET", "/file", params={"uri": uri(path, fs), **params})

    def names(self, path: str = "/", fs: str = "my") -> list[str]:
        return [f["name"] for f in self.ls(path, fs)["files"]]

    def put(self, path: str, data: bytes, **params: Any) -> dict[str, Any]:
        return self.ok("PUT", "/file/content", params={"uri": uri(path), **params}, content=data)

    def session(self, path: str, size: int, **extra: Any) -> dict[str, Any]:
        return self.ok("PUT", "/file/upload", json={"uri": uri(path), "size": size, **extra})

    def chunk(self, session_id: str, index: int, data: bytes, **kw: Any) -> dict[str, Any]:
        return self.call("POST", f"/file/upload/{session_id}/{index}", content=data, **kw)

    def upload(self, path: str, data: bytes, **extra: Any) -> dict[str, Any]:
        sess = self.session(path, len(data), **extra)
        size = sess["chunk_size"]
        count = max(1, -(-len(data) // size)) if size else 1
        for i in range(count):
            part = data[i * size:(i + 1) * size] if size else data
            body = self.chunk(sess["session_id"], i, part)
            assert body["code"] == 0, body
        return sess

    def url(self, path: str, **extra: Any) -> str:
        data = self.ok("POST", "/file/url", json={"uris": [uri(path)], **extra})
        return data["urls"][0]["url"]

    def download(self, path: str) -> bytes:
        resp = self.http.get(self.url(path))
        assert resp.status_code == 200, resp.text
        return resp.content

    def delete(self, *paths: str, hard: bool = False) -> dict[str, Any]:
        return self.call("DELETE", "/file", json={"uris": [uri(p) for p in paths], "skip_soft_delete": hard})
