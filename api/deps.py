"""FastAPI dependencies: bearer-token auth and the state store."""

from __future__ import annotations

import hmac
import os

from fastapi import Request

from api.state import MixtureStore

TOKEN_ENV = "MIDTRAIN_API_TOKEN"


class ProblemError(Exception):
    """Raised by handlers and dependencies; rendered as RFC 7807 problem+json."""

    def __init__(self, status: int, title: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.field = status, title, detail, field


def require_token(request: Request) -> None:
    """With MIDTRAIN_API_TOKEN set, every endpoint but /health needs that bearer token."""
    expected = os.environ.get(TOKEN_ENV)
    if not expected:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ProblemError(401, "Unauthorized", "a valid bearer token is required")


def get_store(request: Request) -> MixtureStore:
    return request.app.state.store
