"""Mixtures: immutable, versioned specs (contract 3)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query

from api.deps import ProblemError, get_store, require_token
from api.routes.common import NOT_FOUND, PROBLEMS, found
from api.schemas import MixturePage, MixtureRecord
from api.state import Store
from mixer.spec import MixtureSpec

router = APIRouter(prefix="/mixtures", tags=["mixtures"], dependencies=[Depends(require_token)],
                   responses=PROBLEMS)


@router.post("", response_model=MixtureRecord, status_code=201)
def create_mixture(spec: MixtureSpec, store: Store = Depends(get_store)) -> dict[str, Any]:
    """Save a mixture spec: version 1 of a new name, else the next version of that name."""
    return store.create_mixture(spec)


@router.get("", response_model=MixturePage)
def list_mixtures(
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0),
    store: Store = Depends(get_store),
) -> dict[str, Any]:
    """The latest version of every mixture, by name."""
    items, total = store.list_mixtures(limit, offset)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/{name}", response_model=MixtureRecord, responses=NOT_FOUND)
def get_mixture(name: str, store: Store = Depends(get_store)) -> dict[str, Any]:
    """The latest version of one mixture."""
    return found(store.get_mixture(name), f"no mixture {name!r}")


@router.get("/{name}/versions", response_model=MixturePage, responses=NOT_FOUND)
def list_mixture_versions(
    name: str,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0),
    store: Store = Depends(get_store),
) -> dict[str, Any]:
    """Every version of one mixture, oldest first."""
    items, total = store.mixture_versions(name, limit, offset)
    if total == 0:
        raise ProblemError(404, "Not Found", f"no mixture {name!r}")
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/{name}/versions/{version}", response_model=MixtureRecord, responses=NOT_FOUND)
def get_mixture_version(
    name: str, version: int = Path(ge=1), store: Store = Depends(get_store)
) -> dict[str, Any]:
    """One version of one mixture; versions never change once saved."""
    return found(store.get_mixture(name, version), f"no mixture {name!r} version {version}")
