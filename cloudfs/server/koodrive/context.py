"""One request's view for the KooDrive handlers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from ..db import User
from .jobstore import Jobs
from .runtime import KooRuntime
from .tree import Tree
from .uploadstore import Uploads


@dataclass
class KooCtx:
    rt: KooRuntime
    jobs: Jobs
    uploads: Uploads
    #: the user acted for (None only on the login/refresh endpoints)
    user: User | None
    request: Request
    body: dict[str, Any]

    @property
    def me(self) -> User:
        assert self.user is not None  # every authenticated route has one
        return self.user

    @property
    def tree(self) -> Tree:
        return Tree(self.rt)

    @property
    def base_url(self) -> str:
        return str(self.request.base_url).rstrip("/")
