"""``cloudfs server --dialect koodrive`` options: switches, app credentials, data-dir dialect."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from cloudfs.server.testing import start_server

from .koohelpers import KooApi


def test_switches_and_app_credentials_from_the_command_line(tmp_path):
    with start_server(tmp_path, dialect="koodrive", capacity=2 << 20,
                      extra_args=["--kd-switch", "usage_unit=B", "--kd-switch", "range=off", "--url-ttl", "60",
                                  "--app-id", "my-app", "--app-secret", "s3cret"]) as srv:
        values = httpx.get(srv.url + "/_cloudfs/koodrive/switches").json()
        assert values["usage_unit"] == "B" and values["range"] is False and values["url_ttl"] == 60
        with KooApi(srv) as api:
            assert api.ok("GET", "/space/usage/overview")["data"]["totalCapacity"] == 2 << 20
            path = "/koodrive/ose/v1/space/usage/overview"
            headers = api.app_headers("GET", path, secret="s3cret")
            headers["Authorization"] = headers["Authorization"].replace("cloudfs-demo-app", "my-app")
            assert api.http.get(path, headers=headers).status_code == 200
        # the faults' reset restores the command line's switches, not the built-in defaults
        srv.faults.clear()
        assert httpx.get(srv.url + "/_cloudfs/koodrive/switches").json()["usage_unit"] == "B"


@pytest.mark.parametrize("bad", ["nope=1", "range=maybe", "range"])
def test_bad_switch_stops_the_server_at_start(tmp_path, bad):
    proc = subprocess.run([sys.executable, "-m", "cloudfs.server", "--dialect", "koodrive", "--data", str(tmp_path),
                           "--port", "0", "--kd-switch", bad], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "cloudfs server:" in proc.stderr


def test_a_data_dir_keeps_its_dialect(tmp_path):
    start_server(tmp_path, dialect="koodrive").stop()
    with pytest.raises(RuntimeError, match="koodrive"):
        start_server(tmp_path, dialect="v4")
