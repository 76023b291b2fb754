"""The internal protocol between the client facade and a server dialect.

A dialect (:mod:`v4`, :mod:`v3`) knows its endpoints, request and response
shapes and addressing (v4: ``cloudreve://my/...`` URIs; v3: paths plus
object ids).  Everything else (name checks, retries and deadlines in
:mod:`http`, signed-URL caching, range and chunk planning, the transfer
engines, the token store) is shared and lives outside the dialect.

Paths given to a dialect are already normalised and checked
(:mod:`cloudfs.client.paths`).  Operations on an existing object take a
:data:`Ref`: the :class:`Entry` the caller holds (with its id, so an
id-addressed backend need not look the path up again) or, where the caller
has none, its path.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from cloudfs.client.auth import Authenticator, SessionCookie, Tokens
from cloudfs.client.models import Capacity, Entry, ServerInfo, TrashSummary
from cloudfs.client.sha256state import HashStates
from cloudfs.client.tokenstore import Store
from cloudfs.errors import CloudfsError


#: an existing object as an operation names it: the Entry the caller holds, or its path
Ref = Entry | str


def path_of(ref: Ref) -> str:
    return ref.path if isinstance(ref, Entry) else ref


class UrlRefused(CloudfsError):
    """The content endpoint refused a signed URL (expired or bad signature):
    sign a new one and try again."""


class RestartUpload(CloudfsError):
    """The upload session cannot go on (the server lost or refuses the
    chunks it already has): cancel it and upload again with a new one."""


@dataclass(frozen=True, slots=True)
class SignedUrl:
    """A download URL and when it stops working (local-clock Unix seconds)."""

    url: str = field(repr=False)
    expires_at: float


@dataclass(slots=True)
class UploadSession:
    """An open upload session, as far as the transfer engine cares."""

    session_id: str
    path: str
    size: int
    #: bytes per chunk; 0 = the whole file as chunk 0
    chunk_size: int
    #: chunks the server accepts in parallel (0/1 = one at a time)
    concurrency: int
    #: local-clock Unix seconds
    expires_at: float
    #: storage policy type ("local", "remote", "s3"...) and whether chunks
    #: are relayed through the Cloudreve server
    policy_type: str = "local"
    relay: bool = False
    #: dialect-specific details (e.g. v4's URI)
    extra: dict[str, object] = field(default_factory=dict)
    #: what a crash journal keeps of the session for the next run's
    #: ``cancel_session`` when the id alone does not tell it what was left
    #: behind (e.g. the temporary name of a replacing upload); "" = the id
    resume: str = ""
    #: the server made the upload whole when it was opened (it knew the
    #: content: KooDrive's ``rapidUpload`` of a new file): nothing is sent,
    #: and since the file is visible at its name, the upload is finished,
    #: never cancelled
    complete_at_open: bool = False

    @property
    def journal_ref(self) -> str:
        return self.resume or self.session_id

    @property
    def through_server(self) -> bool:
        """Chunks go to the server itself, or to pre-signed part URLs the
        API handed out (``"presigned"``): the paths the engine supports."""
        return self.policy_type in ("local", "presigned") or self.relay


class Dialect(Protocol):
    """What the facade needs from a dialect (one backend's API).  ``info``
    names it and carries its :class:`Capabilities`; it owns its login
    (:meth:`log_in`, :meth:`log_out`) and the shape of what it keeps in the
    token store.  How a server is recognised: :mod:`backends`."""

    info: ServerInfo

    # ---- login ----------------------------------------------------------------
    async def log_in(self, url: str, *, email: str | None, password: str | None,
                     otp: Callable[[], str] | None, store: Store | None, resume: bool) -> Authenticator:
        """Log in (a stored login first unless ``resume`` is False) and
        return the authenticator every API call then uses."""
        ...

    async def log_out(self, auth: Authenticator) -> None:
        """Revoke what ``auth`` holds on the server, so a stolen copy is useless."""
        ...

    def name_refusal(self, name: str) -> str | None:
        """Why the server would refuse ``name`` for a new object (None: it
        would not): checked before a file that is created locally reaches it."""
        ...

    # ---- metadata ------------------------------------------------------------
    async def stat(self, path: str) -> Entry: ...
    def list_pages(self, path: str) -> AsyncGenerator[tuple[Entry, list[Entry]], None]: ...
    async def create(self, path: str, *, folder: bool) -> Entry: ...
    async def rename(self, ref: Ref, new_name: str) -> Entry: ...
    async def move(self, refs: Sequence[Ref], dst_dir: str, *, copy: bool) -> None: ...
    async def delete(self, refs: Sequence[Ref], *, permanent: bool) -> None: ...
    async def set_metadata(self, ref: Ref, values: Mapping[str, str | None]) -> None: ...
    async def capacity(self) -> Capacity: ...
    async def trash(self) -> TrashSummary | None:
        """What the recycle bin holds; None if the server has none (deletes are permanent)."""
        ...
    async def empty_trash(self) -> None: ...

    # ---- downloads ---------------------------------------------------------------
    async def sign_url(self, entry: Entry) -> SignedUrl: ...
    def is_content(self, response: httpx.Response) -> bool:
        """Whether a download answer looks like file content (judged from
        the status and headers only, before any of the body is read)."""
        ...
    def content_refused(self, response: httpx.Response, body: bytes) -> Exception | None:
        """For a download answer that is not content (``body``: the start
        of it), the error it stands for (e.g. a refused signature); None
        if it is content after all."""
        ...
    def content_mismatch(self, entry: Entry, response: httpx.Response) -> str | None:
        """Why a content answer is not the version ``entry`` describes, or None."""
        ...

    # ---- uploads -------------------------------------------------------------------
    async def open_upload(self, path: str, size: int, *, mtime_ms: int | None,
                          replace: Entry | None, tag: str | None = None,
                          metadata: Mapping[str, str] | None = None,
                          sha256: str | None = None, hash_states: HashStates | None = None) -> UploadSession:
        """``sha256``: the whole file's, given where ``capabilities.whole_file_hash``;
        ``hash_states`` then has it too, with the SHA-256 states at every
        multiple of its step where they could be read (a dialect may use
        them to send parts in parallel)."""
        ...
    async def send_chunk(self, session: UploadSession, index: int, length: int,
                         body: Callable[[], httpx.AsyncByteStream] | bytes, *, deadline: float) -> None:
        """Send one chunk, retried (re-sending a chunk is safe); ``body``
        makes a fresh stream of the chunk's bytes for each try."""
        ...
    async def cancel_upload(self, session: UploadSession) -> None: ...
    async def complete_upload(self, session: UploadSession, replace: Entry | None) -> Entry:
        """After the completing chunk: whatever finishes the upload (v3: the
        swap into place), then the uploaded file's Entry."""
        ...

    async def cancel_session(self, path: str, session_id: str) -> None: ...

    async def put_whole(self, path: str, content: bytes, *, replace: Entry | None, mtime_ns: int | None,
                        metadata: Mapping[str, str]) -> Entry | None:
        """A new version of the existing file ``replace`` in one request
        (refused as stale if ``replace`` is no longer current), or with
        ``replace`` None a new file (refused with ``AlreadyExists`` if
        anything is at ``path``), with its mtime and ``metadata``; None
        where the server has no such request (then an upload session does it)."""
        ...


class TokenDialect(Protocol):
    """A dialect that logs in with a password and renews with refresh tokens."""

    async def password_login(self, email: str, password: str, otp: Callable[[], str] | None) -> Tokens: ...
    async def refresh(self, refresh_token: str) -> Tokens: ...
    async def logout(self, refresh_token: str) -> None: ...


class SessionDialect(Protocol):
    """A dialect that logs in with a password into a cookie session (v3)."""

    async def password_login(self, email: str, password: str,
                             otp: Callable[[], str] | None) -> SessionCookie: ...
    async def resume(self, cookie: SessionCookie, user: str) -> SessionCookie | None:
        """``cookie``'s session re-issued with a fresh cookie if it is still
        logged in as ``user``; None if it is not."""
        ...
    async def logout(self, cookie: SessionCookie) -> None: ...
