"""Sources: named curate-config source entries (contract 2), registered once and named by
curation runs. Paths are confined to the data roots (``api.paths``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from api.deps import ProblemError, get_store, require_token, store_of
from api.paths import DataRoots, PathError, get_roots, path_problem
from api.routes.common import NOT_FOUND, OFFSET, PROBLEMS, json_response, stored_json
from api.schemas import Problem
from api.sources import SourceExistsError, delete_source, get_source, list_sources, register_source
from api.state import Store
from pipelines.config import SourceConfig

router = APIRouter(prefix="/sources", tags=["sources"], dependencies=[Depends(require_token)],
                   responses=PROBLEMS)


class SourceRecord(BaseModel):
    name: str
    spec: dict[str, Any] = Field(description="the source entry as stored, its path resolved (contract 2)")
    created_at: str = Field(description="UTC, ISO 8601")


class SourcePage(BaseModel):
    items: list[SourceRecord]
    total: int = Field(description="items across all pages")
    limit: int
    offset: int


@router.post("", response_model=SourceRecord, status_code=201,
             responses={409: {"model": Problem, "description": "a source of that name exists"}})
def create_source(
    spec: SourceConfig, store: Store = Depends(get_store), roots: DataRoots = Depends(get_roots)
) -> dict[str, Any]:
    """Register a source: its path (a glob) must lie under a data root and match input now."""
    try:
        return register_source(store, roots, spec)
    except PathError as error:
        raise path_problem(error) from error
    except SourceExistsError as error:
        raise ProblemError(409, "Conflict", str(error), field="name") from error


# Reads run on the event loop and their JSON is kept until the store's next write, as the
# mixtures' (api/routes/mixtures.py), taking the request rather than depending on get_store.
@router.get("", response_model=SourcePage)
async def list_all_sources(
    request: Request,
    limit: int = Query(50, ge=1, le=500),
    offset: int = OFFSET,
) -> Response:
    """Every registered source, by name."""
    store = store_of(request)
    def page() -> dict[str, Any]:
        items, total = list_sources(store, limit, offset)
        return {"items": items, "total": total, "limit": limit, "offset": offset}

    return json_response(stored_json(store, ("sources", limit, offset), SourcePage, page))


@router.get("/{name}", response_model=SourceRecord, responses=NOT_FOUND)
async def get_one_source(name: str, request: Request) -> Response:
    store = store_of(request)
    body = stored_json(store, ("source", name), SourceRecord, lambda: get_source(store, name))
    return json_response(body, f"no source {name!r}")


@router.delete("/{name}", status_code=204, response_class=Response, responses=NOT_FOUND)
def delete_one_source(name: str, store: Store = Depends(get_store)) -> Response:
    """Forget a source; curation runs that named it keep the entry they resolved."""
    if not delete_source(store, name):
        raise ProblemError(404, "Not Found", f"no source {name!r}")
    return Response(status_code=204)
