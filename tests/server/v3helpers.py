"""HTTP helpers for the v3 conformance tests (real HTTP via httpx, cookie sessions)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from cloudfs.server.testing import RunningServer

from .helpers import HttpSession

API3 = "/api/v3"


def enc_path(path: str) -> str:
    """A drive path as the web UI appends it to ``/directory`` (segments URL-encoded)."""
    return "/".join(quote(p, safe="") for p in path.split("/"))


class Api3(HttpSession):
    """A session (cookie jar) against one v3 server; logged in unless ``login=False``."""

    def __init__(self, server: RunningServer, login: bool = True, timeout: float = 60.0) -> None:
        super().__init__(server, timeout)
        if login:
            self.login()

    def login(self, email: str | None = None, password: str | None = None) -> dict[str, Any]:
        body = self.post("/user/session", {"userName": email or self.server.email,
                                           "Password": password or self.server.password, "captchaCode": ""})
        assert body["code"] == 0, body
        return body

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, API3 + path, **kw)

    def call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        resp = self.request(method, path, **kw)
        assert resp.status_code == 200, (resp.status_code, resp.text)
        assert resp.headers["cache-control"] == "private, no-cache"
        return resp.json()

    def get(self, path: str, params: Any = None) -> dict[str, Any]:
        return self.call("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> dict[str, Any]:
        return self.call("POST", path, json=body)

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        body = self.call(method, path, **kw)
        assert body["code"] == 0, body
        return body.get("data")

    # --- conveniences -----------------------------------------------------------------
    def ls(self, path: str = "/") -> dict[str, Any]:
        return self.ok("GET", "/directory" + enc_path(path if path.startswith("/") else "/" + path))

    def objects(self, path: str = "/") -> dict[str, dict[str, Any]]:
        return {o["name"]: o for o in self.ls(path)["objects"]}

    def names(self, path: str = "/") -> list[str]:
        return [o["name"] for o in self.ls(path)["objects"]]

    def id_of(self, path: str) -> str:
        parent, _, name = path.rpartition("/")
        return self.objects(parent or "/")[name]["id"]

    def folder_id(self, path: str) -> str:
        return self.ls(path)["parent"]

    def policy(self) -> str:
        return self.ls("/")["policy"]["id"]

    def mkdir(self, path: str) -> dict[str, Any]:
        return self.call("PUT", "/directory", json={"path": path})

    def touch(self, path: str) -> dict[str, Any]:
        return self.post("/file/create", {"path": path})

    def session(self, parent: str, name: str, size: int, **extra: Any) -> dict[str, Any]:
        body = {"path": parent, "size": size, "name": name, "policy_id": self.policy(),
                "last_modified": 0, "mime_type": ""}
        body.update(extra)
        return self.call("PUT", "/file/upload", json=body)

    def chunk(self, sid: str, index: int, data: bytes, **kw: Any) -> dict[str, Any]:
        return self.call("POST", f"/file/upload/{sid}/{index}", content=data, **kw)

    def upload(self, path: str, data: bytes, **extra: Any) -> str:
        parent, _, name = path.rpartition("/")
        body = self.session(parent or "/", name, len(data), **extra)
        assert body["code"] == 0, body
        sess = body["data"]
        size = sess["chunkSize"]
        count = max(1, -(-len(data) // size)) if size else 1
        for i in range(count):
            part = data[i * size:(i + 1) * size] if size else data
            result = self.chunk(sess["sessionID"], i, part)
            assert result == {"code": 0, "msg": ""}, result
        return sess["sessionID"]

    def url(self, path: str) -> str:
        return self.ok("PUT", f"/file/download/{self.id_of(path)}")

    def download(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(self.url(path), **kw)

    def delete(self, items: list[str] | None = None, dirs: list[str] | None = None, **extra: Any) -> dict[str, Any]:
        return self.call("DELETE", "/object", json={"items": items or [], "dirs": dirs or [], **extra})

    def move(self, src_dir: str, dst: str, items: list[str] | None = None,
             dirs: list[str] | None = None) -> dict[str, Any]:
        return self.call("PATCH", "/object", json={"action": "move", "src_dir": src_dir, "dst": dst,
                                                   "src": {"items": items or [], "dirs": dirs or []}})

    def copy(self, src_dir: str, dst: str, items: list[str] | None = None,
             dirs: list[str] | None = None) -> dict[str, Any]:
        return self.post("/object/copy", {"src_dir": src_dir, "dst": dst,
                                          "src": {"items": items or [], "dirs": dirs or []}})

    def rename(self, new_name: str, items: list[str] | None = None, dirs: list[str] | None = None) -> dict[str, Any]:
        return self.post("/object/rename", {"action": "rename", "new_name": new_name,
                                            "src": {"items": items or [], "dirs": dirs or []}})

    def storage(self) -> dict[str, int]:
        return self.ok("GET", "/user/storage")
