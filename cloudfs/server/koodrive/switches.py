"""Named, switchable assumptions and test switches of the KooDrive emulator.

Every point the public reference leaves open (``/work/shared/koodrive-api.md``
"unknown") is one field here, with the value the emulator assumes by default;
docs/koodrive-emulator.md explains each.  The test switches (short pages,
slow/failing jobs, Range off, partial download batches, ...) live here too.

Set them on the command line (``--kd-switch NAME=VALUE``, repeatable) or at
run time through ``POST /_cloudfs/koodrive/switches`` (JSON object of
NAME: VALUE; ``GET`` shows them all, ``DELETE`` restores the defaults).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

MIB = 1 << 20


@dataclass
class Switches:
    # --- auth ----------------------------------------------------------------------
    #: the HMAC app signature is accepted (ENT documents it; whether CAR does is unknown)
    app_auth: bool = True
    #: HashedRequestPayload of the signature: "sha256" = hex(sha256(body)), or "unsigned"
    payload_hash: str = "sha256"
    #: accessToken lifetime (s): CAR's login example says expiresIn 1800
    token_ttl: float = 1800.0
    #: each call pushes the token's expiry to now + token_ttl (ENT: "sliding 20 minutes")
    token_sliding: bool = True
    #: refresh token lifetime (s): unknown, 30 days assumed
    refresh_ttl: float = 30 * 86400.0
    #: a refresh hands out a new refreshToken (and the old one dies): unknown, off
    rotate_refresh: bool = False
    #: API requests a second before the gateway answers 429 APIGW.0308 (limits unknown; 0 = none)
    rate_limit: float = 0.0
    # --- envelope --------------------------------------------------------------------
    #: type of ``code``: "page" = what each endpoint's page shows (table in app.py), "int", "string"
    code_as: str = "page"
    #: item times: "iso" (2023-08-18T05:43:49Z, createFile's createdTime format), "iso_ms"
    #: (2025-11-12T08:37:14.613Z, as the usage pages show) or "epoch_ms"
    time_format: str = "iso"
    #: ``fileType`` of a file created without one (fileType is the client's; folders are "10")
    file_type: str = "0"
    #: list items and detail carry ``sha256`` (unknown whether the real service does)
    item_sha256: bool = False
    # --- listing ---------------------------------------------------------------------
    #: largest pageSize (siblings cap at 100)
    max_page_size: int = 100
    #: a larger pageSize is "clamp"ed to max_page_size or "reject"ed with 13000102
    page_size_over_max: str = "clamp"
    #: folders come before files whatever the sort (unknown; common in drives)
    folders_first: bool = True
    #: test switch: pages shorter than pageSize, and every third page empty, before the end
    short_pages: bool = False
    # --- names and tree --------------------------------------------------------------
    #: renameMode/autoRename when the request has none (unknown): 2 = append a timestamp
    default_rename_mode: int = 2
    #: longest name files/rename takes (ENT's 2024 page says 80; fileName elsewhere 250)
    rename_max_len: int = 250
    #: folder depth limit behind 13000310 (the limit is unknown)
    max_depth: int = 64
    # --- jobs ------------------------------------------------------------------------
    #: polls a job stays in each of pending and running (1 = pending, running, done)
    job_polls_per_step: int = 1
    #: test switch: each job state lasts at least this long, s (0 = polls alone decide)
    job_seconds: float = 0.0
    #: test switch: the next N jobs end done with an error result (the operation not applied)
    job_fail_count: int = 0
    #: resultCode of such a failed job
    job_fail_code: int = 13000409
    #: a move/copy onto an existing name: "fail" (13000405 in the job result) or "rename"
    job_conflict: str = "fail"
    #: a logical delete (201) needs ``filePath`` (the reference says it is required)
    require_file_path: bool = True
    # --- downloads and uploads -------------------------------------------------------
    #: download URL lifetime, s (unknown; upload URLs of the example live 3600 s)
    url_ttl: float = 3600.0
    #: upload part URL lifetime, s (X-Amz-Expires=3600 in the createFile example)
    upload_url_ttl: float = 3600.0
    #: download URLs answer Range with 206 (undocumented; S3 semantics say yes)
    range: bool = True
    #: test switch: every second file of a download batch fails (batchCode 0)
    download_partial: bool = False
    #: ``rapidUpload`` when the whole-file sha256 is already stored
    rapid_upload: bool = True
    #: complete checks each hashCtx against the content (13000402 when wrong)
    verify_hash_ctx: bool = True
    #: an unfinished upload task holds its name until complete (unknown; there is no
    #: cancel call, so if it does, an abandoned upload blocks its name for ever)
    pending_holds_name: bool = False
    #: part size the server plans when files/create has no multiParts (unknown)
    default_part_size: int = 5 * MIB
    # --- space -----------------------------------------------------------------------
    #: unit of GetSpace's capacity/spaceUsed Strings (unknown): "B" or "KB"
    space_unit: str = "B"
    #: unit of the usage endpoints' quota/used/total* (the overview page says KB)
    usage_unit: str = "KB"
    #: bytes in a KB (1048576 in the usage example reads as 1 GiB in KiB)
    kb_bytes: int = 1024
    #: items in the recycle bin count toward spaceUsed (unknown; most drives do)
    recycle_counts: bool = True

    _CHOICES = {"payload_hash": ("sha256", "unsigned"), "code_as": ("page", "int", "string"),
                "time_format": ("iso", "iso_ms", "epoch_ms"), "page_size_over_max": ("clamp", "reject"),
                "job_conflict": ("fail", "rename"), "space_unit": ("B", "KB"), "usage_unit": ("B", "KB")}

    def update(self, values: dict[str, Any]) -> None:
        """Set fields from JSON values or strings; ValueError names a bad one."""
        known = {f.name: f for f in fields(self)}
        parsed: dict[str, Any] = {}
        for name, raw in values.items():
            if name not in known:
                raise ValueError(f"unknown switch {name!r}")
            parsed[name] = _coerce(name, raw, type(getattr(self, name)))
            choices = self._CHOICES.get(name)
            if choices and parsed[name] not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}")
        for name, value in parsed.items():
            setattr(self, name, value)

    def snapshot(self) -> dict[str, Any]:
        return asdict(self)


def _coerce(name: str, raw: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name} needs a boolean")
    try:
        if kind is int:
            if isinstance(raw, bool):
                raise ValueError
            return int(raw)
        if kind is float:
            return float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{name} needs a {kind.__name__}") from None
    return str(raw)


def parse_assignments(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--kd-switch takes NAME=VALUE, not {item!r}")
        out[name.strip()] = value.strip()
    return out
