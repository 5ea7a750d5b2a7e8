"""Response schemas of the REST API (request bodies reuse the specs' own pydantic models)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Health(BaseModel):
    status: str
    version: str


class MixtureRecord(BaseModel):
    name: str
    version: int
    sha256: str  # of the canonical spec JSON
    spec: dict[str, Any]
    created_at: str


class MixturePage(BaseModel):
    items: list[MixtureRecord]
    total: int
    limit: int
    offset: int


class Problem(BaseModel):
    """RFC 7807 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    field: str | None = None
