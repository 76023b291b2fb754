"""HTTP helpers and fixtures for the KooDrive emulator conformance tests (real HTTP via httpx).

Test modules import the fixtures they use (``from .koohelpers import kd_server, kapi``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cloudfs.server.koodrive.auth import authorization_header, format_x_date
from cloudfs.server.testing import RunningServer, start_server

from .helpers import HttpSession

P = "/koodrive/ose/v1"
APP_ID, APP_SECRET = "cloudfs-demo-app", "cloudfs-demo-app-secret"
MIB = 1 << 20


def switches(server: RunningServer, **values: Any) -> dict[str, Any]:
    resp = httpx.post(server.url + "/_cloudfs/koodrive/switches", json=values)
    assert resp.status_code == 200, resp.text
    return resp.json()


class KooApi(HttpSession):
    """A logged-in (carrier login) session against one KooDrive emulator."""

    def __init__(self, server: RunningServer, login: bool = True) -> None:
        super().__init__(server)
        self.token = self.refresh_token = self.user_id = self.container = ""
        if login:
            self.login()
            self.container = self.space()["containerId"]

    def login(self, account: str | None = None, password: str | None = None) -> dict[str, Any]:
        resp = self.http.post(P + "/auth/login", headers={"x-hw-agentName": "cloudfs-tests"},
                              json={"account": account or self.server.email, "authType": "1",
                                    "password": password or self.server.password, "captchaToken": ""})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        self.token = body["data"]["sessionInfo"]["accessToken"]
        self.refresh_token = body["data"]["sessionInfo"]["refreshToken"]
        self.user_id = body["data"]["userInfo"]["userId"]
        return body

    def headers(self, **extra: str) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.token}", "X-User-Id": self.user_id,
             "X-Date": format_x_date(time.time())}
        h.update(extra)
        return h

    def app_headers(self, method: str, path: str, query: str = "", body: bytes = b"",
                    secret: str = APP_SECRET, when: float | None = None, mode: str = "sha256") -> dict[str, str]:
        host = self.server.url.removeprefix("http://")
        signed = {"host": host, "x-date": format_x_date(time.time() if when is None else when),
                  "x-user-id": self.user_id}
        auth = authorization_header(APP_ID, secret, method, path, query, signed, body, mode)
        return {"Authorization": auth, "X-Date": signed["x-date"], "X-User-Id": self.user_id,
                "Content-Type": "application/json"}

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        return self.http.request(method, P + path, headers=self.headers() if headers is None else headers, **kw)

    def ok(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        resp = self.request(method, path, **kw)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["code"] in (0, "0") and body["msg"] == "success", body
        return body

    def error(self, method: str, path: str, status: int = 400, **kw: Any) -> Any:
        """The ``code`` of an expected error answer."""
        resp = self.request(method, path, **kw)
        assert resp.status_code == status, (resp.status_code, resp.text)
        return resp.json()["code"]

    # --- conveniences -------------------------------------------------------------------
    def space(self) -> dict[str, Any]:
        return self.ok("GET", f"/space/{self.user_id}", params={"type": 1})["data"]

    def mkdir(self, name: str, parent: str = "root", **extra: Any) -> dict[str, Any]:
        return self.ok("POST", "/directory", json={"fileName": name, "fileType": "10", "containerId": self.container,
                                                   "parentFolder": [] if parent == "root" else [parent],
                                                   "renameMode": 3, **extra})

    def page(self, parent: str = "root", cursor: str = "", size: int = 100, type: int = 0,
             **extra: Any) -> dict[str, Any]:
        return self.ok("POST", f"/files/{type}", json={"containerId": self.container, "parentFileId": parent,
                                                       "pageInfo": {"pageSize": size, "pageCursor": cursor},
                                                       **extra})

    def ls(self, parent: str = "root", type: int = 0, size: int = 100) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = ""
        while True:
            page = self.page(parent, cursor, size, type)
            out += page["files"]
            cursor = page["nextCursor"]
            if not cursor:
                return out

    def names(self, parent: str = "root", type: int = 0) -> list[str]:
        return [f["fileName"] for f in self.ls(parent, type)]

    def detail(self, file_id: str) -> dict[str, Any]:
        return self.ok("POST", f"/files/{file_id}/detail", json={"containerId": self.container})

    def create(self, name: str, data: bytes, parent: str = "root", **extra: Any) -> dict[str, Any]:
        body = {"fileName": name, "fileType": "0", "parentFolder": [parent],
                "sha256": hashlib.sha256(data).hexdigest(),
                "length": len(data), "uploadMode": "multipart", "uploadType": 1, "autoRename": 3,
                "containerId": self.container}
        body.update(extra)
        return self.ok("POST", "/files/create", json=body)

    def put_parts(self, created: dict[str, Any], data: bytes) -> None:
        for part in created["multiParts"]:
            chunk = data[part["partOffset"]:part["partOffset"] + part["partSize"]]
            resp = self.http.put(part["uploadUrl"], content=chunk)
            assert resp.status_code == 200, resp.text

    def upload(self, name: str, data: bytes, parent: str = "root", **extra: Any) -> str:
        created = self.create(name, data, parent, **extra)
        if not created["rapidUpload"]:
            self.put_parts(created, data)
            self.ok("POST", "/files/complete", json={"fileId": created["fileId"],
                                                    "sha256": hashlib.sha256(data).hexdigest()})
        return created["fileId"]

    def url(self, file_id: str) -> str:
        body = self.ok("POST", "/files/download", json={"containerId": self.container, "fileIds": [file_id]})
        assert body["batchCode"] == 1, body
        return body["downloads"][0]["url"]

    def download(self, file_id: str) -> bytes:
        resp = self.http.get(self.url(file_id))
        assert resp.status_code == 200, resp.text
        return resp.content

    def job(self, task_type: int, action: int | None, file_ids: list[str], target: str | None = None) -> str:
        body: dict[str, Any] = {"taskType": task_type, "dstContainerId": self.container,
                                "taskInfo": {"srcContainerId": self.container,
                                             "fileInfo": [{"fileId": f, "filePath": f"/root/{f}"} for f in file_ids]}}
        if action is not None:
            body["actionType"] = action
        if target is not None:
            body["taskInfo"]["newFilePath"] = f"/root/{target}" if target != "root" else "/root"
        return self.ok("POST", "/jobs", json=body)["data"]

    def poll(self, job_id: str) -> dict[str, Any]:
        body = self.ok("GET", f"/{job_id}")
        assert body["code"] == "0", body  # the GetJobDetail page types code as String
        return dict(body["data"])

    def run_job(self, *args: Any, **kw: Any) -> dict[str, Any]:
        job_id = self.job(*args, **kw)
        for _ in range(50):
            body = self.poll(job_id)
            if body["jobInfo"]["status"] in (2, 3):
                return body
        raise AssertionError("job never finished")


@pytest.fixture(scope="module")
def kd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One ``cloudfs server --dialect koodrive`` per test module (faults on, cleared after each test)."""
    with start_server(tmp_path_factory.mktemp("kd-server"), faults=True, dialect="koodrive") as srv:
        yield srv


@pytest.fixture
def kd_fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_server(tmp_path_factory.mktemp("kd-fresh"), faults=True, dialect="koodrive",
                      capacity=64 * MIB) as srv:
        yield srv


@pytest.fixture
def kapi(kd_server: RunningServer) -> Iterator[KooApi]:
    with KooApi(kd_server) as session:
        yield session
    kd_server.faults.clear()
