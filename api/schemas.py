"""Response schemas of the REST API. Request bodies reuse the specs' own pydantic models
(``mixer.spec.MixtureSpec``), so the CLI and the API accept exactly the same documents."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: str = Field(examples=["ok"])
    version: str = Field(description="installed midtrain version")


class MixtureRecord(BaseModel):
    name: str
    version: int = Field(ge=1, description="1 for the first save of a name, then n+1")
    sha256: str = Field(description="sha256 of the canonical spec JSON (sorted keys, defaults filled)")
    spec: dict[str, Any] = Field(description="the mixture spec as stored (contract 3)")
    created_at: str = Field(description="UTC, ISO 8601")


class MixturePage(BaseModel):
    items: list[MixtureRecord]
    total: int = Field(description="items across all pages")
    limit: int
    offset: int


class FieldError(BaseModel):
    field: str = Field(description="dotted path of the offending field, e.g. phases.0.sources.1.weight")
    message: str


class Problem(BaseModel):
    """RFC 7807 problem details; ``field`` and ``errors`` are extension members that say which
    input was wrong."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    field: str | None = None
    errors: list[FieldError] | None = None
