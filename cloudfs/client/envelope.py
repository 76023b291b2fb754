"""Cloudreve's JSON response envelope ``{code, data, msg, ...}``, shared by
v3 and v4: decoding it defensively and turning a non-zero code into
:class:`CloudreveError`.

Anything that is not a JSON object with an integer ``code`` (HTML from a
proxy, a truncated body, a bare string) is a :class:`ProtocolError`, never a
crash further up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cloudfs.client.cloudreve_codes import CloudreveError
from cloudfs.errors import ProtocolError

SUCCESS = 0
#: login continues with a second factor (``data`` = 2FA session id)
CONTINUE_2FA = 203


@dataclass(frozen=True, slots=True)
class Envelope:
    code: int
    data: Any
    msg: str
    correlation_id: str | None
    aggregated: dict[str, Any] | None

    @property
    def ok(self) -> bool:
        return self.code == SUCCESS

    def error(self) -> CloudreveError:
        return CloudreveError(
            self.code,
            self.msg,
            correlation_id=self.correlation_id,
            aggregated=_aggregated(self.aggregated),
            data=self.data,
        )

    def unwrap(self) -> Any:
        """``data`` on success, else raise the error."""
        if self.code != SUCCESS:
            raise self.error()
        return self.data


def _aggregated(raw: dict[str, Any] | None) -> dict[str, CloudreveError]:
    out: dict[str, CloudreveError] = {}
    for key, item in (raw or {}).items():
        if isinstance(item, dict) and isinstance(item.get("code"), int):
            out[str(key)] = CloudreveError(
                item["code"], str(item.get("msg") or ""), correlation_id=item.get("correlation_id") or None
            )
        else:
            out[str(key)] = CloudreveError(-1, "unreadable per-item error")
    return out


def parse(body: bytes, what: str) -> Envelope:
    """Decode one envelope; ``what`` names the request in error messages."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        preview = body[:60].decode("utf-8", "replace")
        raise ProtocolError(f"{what}: the server answered something that is not JSON ({len(body)} bytes: "
                            f"{preview!r})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("code"), int) or isinstance(doc.get("code"), bool):
        raise ProtocolError(f"{what}: the server's answer is not a Cloudreve response envelope")
    aggregated = doc.get("aggregated_error")
    return Envelope(
        code=doc["code"],
        data=doc.get("data"),
        msg=str(doc.get("msg") or ""),
        correlation_id=str(doc["correlation_id"]) if doc.get("correlation_id") else None,
        aggregated=aggregated if isinstance(aggregated, dict) else None,
    )
