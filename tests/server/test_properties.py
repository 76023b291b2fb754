"""Property tests: arbitrary names and URIs never corrupt the tree."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import enc

FORBIDDEN = set('\\/:*?"<>|')


def _legal(name: str) -> bool:
    size = len(name.encode("utf-8"))
    return 0 < size <= 255 and not (set(name) & FORBIDDEN) and name not in (".", "..")


# "/" (even percent-encoded) separates path elements after decoding, as in Go: covered elsewhere
names = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/"), max_size=90)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names)
def test_any_name_round_trips_or_is_refused(api, name):
    folder = f"prop-{uuid.uuid4().hex[:8]}"
    api.mkdir(f"/{folder}")
    before = api.names(f"/{folder}")
    body = api.post("/file/create", {"uri": f"cloudreve://my/{folder}/{enc(name)}", "type": "file"})
    if name == "":
        # "cloudreve://my/prop/" is the folder itself (trailing slash dropped): a type clash
        assert body["code"] == 40004
    elif _legal(name):
        assert body["code"] == 0, body
        assert body["data"]["name"] == name
        assert name in api.names(f"/{folder}")
        info = api.get("/file/info", {"uri": body["data"]["path"]})
        assert info["code"] == 0 and info["data"]["id"] == body["data"]["id"]
        assert api.delete(f"/{folder}/{name}", hard=True)["code"] == 0
    else:
        assert body["code"] in (40052, 40016, 40004), body
    assert sorted(api.names(f"/{folder}")) == sorted(before)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.text(max_size=60))
def test_raw_uri_strings_get_envelopes(api, raw):
    body = api.call("POST", "/file/create", json={"uri": "cloudreve://my/" + raw, "type": "folder"})
    assert set(body) <= {"code", "data", "msg", "correlation_id", "aggregated_error"}
    assert isinstance(body["code"], int)
    listing = api.call("GET", "/file", params={"uri": "cloudreve://my/" + raw})
    assert isinstance(listing["code"], int)
