"""ClientSettings: every tunable of the client in one frozen dataclass
(re-exported by :mod:`cloudfs.client.api`, where the contract names it)."""

from __future__ import annotations

from dataclasses import dataclass

from cloudfs.client.retry import RetryPolicy


@dataclass(frozen=True, slots=True)
class ClientSettings:
    #: one HTTP request (connect, each read, each write) may take at most this long
    request_timeout_s: float = 30.0
    #: a whole call, retries included, gives up after this long
    deadline_s: float = 30.0
    #: attempts for a retryable request (first try included)
    max_attempts: int = 5
    #: base and cap of the exponential backoff (full jitter)
    backoff_base_s: float = 0.2
    backoff_max_s: float = 5.0
    #: parallel ranges when one read spans several download parts
    read_parallelism: int = 4
    #: upper bound on parallel chunks of one upload (the server may allow fewer)
    upload_parallelism: int = 4
    #: HTTP connection pool size
    max_connections: int = 32
    user_agent: str = "cloudfs"
    # ---- additions beyond the original contract (all optional) ---------------
    #: bytes per parallel range of read()
    read_part_size: int = 8 << 20
    #: slowest transfer rate tolerated: a chunk or range of n bytes gets
    #: ``deadline_s + n / min_transfer_rate`` before it counts as timed out
    min_transfer_rate: int = 256 << 10
    #: entries per listing page (Cloudreve caps it at its max_page_size, 2000)
    page_size: int = 1000
    #: an upload whose session expired (SessionExpired) is restarted at most this often
    max_upload_restarts: int = 2
    #: bytes read from the local file per piece of an upload chunk body
    upload_read_size: int = 1 << 20
    #: a new version of at most this many bytes goes up in one request where
    #: the server has one (Cloudreve 4: PUT /file/content), not a session
    whole_upload_max: int = 4 << 20
    #: ...and a new file of at most this many: its time is then a request of
    #: its own (a session sets it), which only small files, bound by round
    #: trips, gain from (tar x, a build); larger ones keep the chunked
    #: session's retry per chunk
    whole_create_max: int = 1 << 20
    #: bytes per socket read of a download (see http._raise_socket_read_size)
    download_read_size: int = 256 << 10
    #: verify TLS certificates (False only for test servers)
    verify_tls: bool = True
    #: where an object the client deletes on its own goes: the old version a
    #: replace beside the file takes out (KooDrive), to the recycle bin, or for
    #: good (the mount's ``delete`` option; a bin counts against the quota)
    delete_to_trash: bool = True

    def retry_policy(self, deadline_s: float | None = None) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_base_s=self.backoff_base_s,
            backoff_max_s=self.backoff_max_s,
            deadline_s=self.deadline_s if deadline_s is None else deadline_s,
        )

    def transfer_deadline(self, nbytes: int) -> float:
        """Time allowed for moving ``nbytes`` in one call, retries included."""
        return self.deadline_s + nbytes / max(self.min_transfer_rate, 1)
