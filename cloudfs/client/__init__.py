"""The Cloudreve client: the only way cloudfs talks to a server.

Public: :class:`CloudreveClient`, :class:`ClientSettings`, the models, and
:class:`TokenStore` / :class:`RedactingFilter` (CLI helpers).  Module map:

* ``api``       the facade and contract the filesystem layer codes against
* ``settings``  ClientSettings
* ``http``      httpx pool, error classification, envelope + auth per call
* ``retry``     retry policy (tenacity), backoff, deadlines
* ``envelope``  Cloudreve's {code, data, msg} envelope
* ``auth``      bearer tokens and their renewal; ``login`` the login flow
* ``tokenstore`` the 0600 token file; ``redact`` secrets out of logs
* ``detect``    which server is at a URL
* ``dialect``   the internal protocol a server dialect implements
* ``v4`` / ``v4_shapes``  Cloudreve v4 endpoints and JSON shapes
* ``urlcache``  signed download URLs; ``download`` ranged reads
* ``upload``    chunked uploads; ``plan`` range/chunk arithmetic
* ``paths``     path normalisation and name checks; ``tasks`` nursery helpers
"""

from cloudfs.client.api import ClientSettings, CloudreveClient, ProgressFn
from cloudfs.client.auth import RedactingFilter, TokenStore
from cloudfs.client.models import Capacity, Entry, ServerInfo

__all__ = [
    "Capacity", "ClientSettings", "CloudreveClient", "Entry", "ProgressFn", "RedactingFilter", "ServerInfo",
    "TokenStore",
]
