"""The registry of backends: adding one is its own modules under client/
plus one line here.

Each entry recognises its kind of server from the URL (a ping, a known
endpoint) and returns the dialect that speaks to it; the dialect declares
its :class:`~cloudfs.client.models.Capabilities` and owns its login.  The
layers above (fs, upload, cache) ask the capabilities and catch the typed
errors of :mod:`cloudfs.errors`; they never learn which backend it is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from cloudfs.client import detect as cloudreve
from cloudfs.client.detect import Unrecognised
from cloudfs.client.koodrive import detect as koodrive
from cloudfs.client.dialect import Dialect
from cloudfs.client.http import Http
from cloudfs.errors import UnsupportedServer

__all__ = ["RECOGNISERS", "Unrecognised", "detect"]

#: answers the dialect for the server at ``http.base_url``, or what was found instead
Recogniser = Callable[[Http], Awaitable[Dialect | Unrecognised]]

#: tried in this order; the first that recognises the server wins
RECOGNISERS: dict[str, Recogniser] = {
    "cloudreve": cloudreve.recognise,  # Cloudreve 4 and 3 (one ping tells which)
    "koodrive": koodrive.recognise,  # Huawei Cloud KooDrive (/koodrive/ose/v1)
}


async def detect(http: Http, backend: str | None = None) -> Dialect:
    """The dialect for the server at ``http.base_url``: from ``backend``'s
    recogniser only if given, else the first registered one that knows it.
    ``UnsupportedServer`` (EPROTONOSUPPORT) names what the first found."""
    names = [backend] if backend is not None else list(RECOGNISERS)
    refused: list[str] = []
    for name in names:
        recognise = RECOGNISERS.get(name)
        if recognise is None:
            raise UnsupportedServer(f"unknown backend {name!r} (known: {', '.join(RECOGNISERS)})")
        found = await recognise(http)
        if not isinstance(found, Unrecognised):
            return found
        refused.append(found.found)
    raise UnsupportedServer(refused[0])
