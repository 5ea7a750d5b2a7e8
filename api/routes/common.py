"""What every router shares: the problems documented on protected routes, and 404s."""

from __future__ import annotations

from typing import Any, Callable

from fastapi import Query, Response
from pydantic import BaseModel

from api.deps import ProblemError
from api.schemas import Problem
from api.state import Store

# Documented on every protected route, so /docs shows the problem schema, not FastAPI's default.
PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "a body that cannot be parsed (not UTF-8, not JSON)"},
    401: {"model": Problem, "description": "missing or wrong bearer token"},
    413: {"model": Problem, "description": "request body over the size limit"},
    422: {"model": Problem, "description": "invalid input; `field` names it"},
}
# A page's start, bounded: the stores take a 64-bit offset, and an unbounded one from a
# request (schemathesis sent 2**63) failed there as a 500.
MAX_OFFSET = 2**31 - 1
OFFSET = Query(0, ge=0, le=MAX_OFFSET, description="how many items to skip")

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "no such resource"}}


def found(record: dict[str, Any] | None, detail: str) -> dict[str, Any]:
    if record is None:
        raise ProblemError(404, "Not Found", detail)
    return record


def stored_json(store: Store, key: tuple, model: type[BaseModel], content: Callable[[], Any | None]) -> bytes | None:
    """``content()`` (a handler's result from the store's reads alone; None for none) as its
    response model's JSON, validated and serialised as FastAPI does for a ``response_model``;
    kept by the store until its next write (``Store.cached``), so a repeated read costs neither
    the rows' conversion nor the validation and serialisation. The route still declares
    ``response_model`` for its documentation."""
    def serialise() -> bytes | None:
        value = content()
        if value is None:
            return None
        return model.__pydantic_serializer__.to_json(model.model_validate(value), by_alias=True)

    return store.cached(key, serialise)


def json_response(body: bytes | None, detail: str = "") -> Response:
    """``body`` (from ``stored_json``) as a 200 response, a 404 problem when None."""
    if body is None:
        raise ProblemError(404, "Not Found", detail)
    return Response(body, media_type="application/json")
