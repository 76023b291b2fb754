"""The JSON envelope every API answer uses, encoded the way Go's encoding/json does
(:mod:`cloudfs.server.common.goformat`).

``{"code", "data"?, "aggregated_error"?, "msg", "error"?, "correlation_id"?}``
(``serializer.Response``, field order kept).  We run in "release mode", so the
raw ``error`` text is never sent.  HTTP status is 200 for every envelope.
"""

from __future__ import annotations

from typing import Any

from ..common.goformat import GoJSONResponse
from . import errors as E
_MISSING = object()


def envelope(code: int = 0, data: Any = _MISSING, msg: str = "",
             aggregated: dict[str, Any] | None = None,
             correlation_id: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"code": code}
    # ``data`` is an interface{} with omitempty: omitted only when nil
    if data is not _MISSING and data is not None:
        out["data"] = data
    if aggregated:
        out["aggregated_error"] = aggregated
    out["msg"] = msg
    if correlation_id:
        out["correlation_id"] = correlation_id
    return out


def error_envelope(err: BaseException, correlation_id: str | None,
                   default_code: int = E.NOT_SET, default_msg: str = "") -> dict[str, Any]:
    """``serializer.ErrWithDetails``: code/msg from the chain, details for 40073/40081."""
    code, msg = default_code, default_msg
    data: Any = None
    aggregated: dict[str, Any] | None = None
    app = E.find_app_error(err)
    if app is not None:
        code = app.err_code()
        msg = app.msg
        if code == E.LOCK_CONFLICT and app.data is not None:
            data = app.data
        if code == E.BATCH_NOT_FULLY_COMPLETED and isinstance(app.raw, E.AggregateError):
            aggregated = {key: error_envelope(inner, correlation_id)
                          for key, inner in app.raw.errors.items()}
    return envelope(code, data, msg, aggregated, correlation_id)


def param_error_envelope(msg: str) -> dict[str, Any]:
    """``ParamErrDeprecated``: binding failures carry no correlation id."""
    return envelope(E.PARAM_ERR, msg=msg or "Invalid parameters.")


def api_response(payload: dict[str, Any], status: int = 200) -> GoJSONResponse:
    # the /api/v4 group sets "private, no-cache" on every answer
    return GoJSONResponse(payload, status_code=status,
                          headers={"Cache-Control": "private, no-cache"})


def ok(data: Any = _MISSING) -> GoJSONResponse:
    return api_response(envelope(0, data))


def fail(err: BaseException, correlation_id: str | None) -> GoJSONResponse:
    return api_response(error_envelope(err, correlation_id))
