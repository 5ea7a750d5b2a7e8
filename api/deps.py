"""FastAPI dependencies: bearer-token auth and the state store, and the error type they raise."""

from __future__ import annotations

import hmac

from fastapi import Request
from fastapi.security import HTTPBearer

from api.jobs import Jobs
from api.state import Store

TOKEN_ENV = "MIDTRAIN_API_TOKEN"


class ProblemError(Exception):
    """Raised by handlers and dependencies; rendered as RFC 7807 problem+json."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.field = status, title, detail, field
        self.headers = headers


# The dependencies below are async although they do no I/O: FastAPI runs a sync dependency in
# the thread pool, a thread hop per dependency per request, which under 50 clients costs more
# than the work itself.
class _RequireToken(HTTPBearer):
    """The bearer scheme and the token check in one dependency (``require_token``): FastAPI's
    solving of each dependency costs about 75,000 instructions a request, a tenth of a cached
    read's, and the scheme alone would be one more. auto_error=False: a missing or malformed
    header must give our 401 problem, not FastAPI's 403. Declaring the scheme also puts
    "Authorize" in /docs (named HTTPBearer, as a plain ``HTTPBearer`` is)."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        """With a token configured (``create_app`` reads ``$MIDTRAIN_API_TOKEN`` once), every
        endpoint that depends on this needs ``Authorization: Bearer <token>``."""
        credentials = await super().__call__(request)
        expected: str | None = request.app.state.api_token  # no default: a missing setting fails closed
        if not expected:
            return
        given = credentials.credentials if credentials else ""
        # Constant-time comparison, so response timing does not reveal a token's prefix.
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise ProblemError(
                401, "Unauthorized", "a valid bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )


require_token = _RequireToken(auto_error=False, scheme_name="HTTPBearer",
                              description=f"the value of ${TOKEN_ENV}")


async def get_store(request: Request) -> Store:
    return store_of(request)


async def get_jobs(request: Request) -> Jobs:
    return jobs_of(request)


# The cached reads (mixtures, sources, jobs) take the request and call these instead of
# depending on get_store and get_jobs: FastAPI's solving of one dependency costs about 75,000
# instructions a request, a tenth of a cached read's.
def store_of(request: Request) -> Store:
    return request.app.state.store


def jobs_of(request: Request) -> Jobs:
    return request.app.state.jobs
