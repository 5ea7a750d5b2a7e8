"""Corpora: the outputs of finished curation runs (contract 1), by the run's job id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from api import service
from api.deps import ProblemError, get_store, require_token
from api.routes.common import NOT_FOUND, OFFSET, PROBLEMS
from api.schemas import Problem
from api.state import Store
from corpus.schema import DOMAINS

router = APIRouter(prefix="/corpora", tags=["corpora"], dependencies=[Depends(require_token)],
                   responses={**PROBLEMS, **NOT_FOUND,
                              409: {"model": Problem, "description": "the run has not succeeded"}})


class CorpusStats(BaseModel):
    output: str = Field(description="the curation output folder")
    run_id: str = Field(description="the manifest's run id")
    config_hash: str
    started_at: str
    finished_at: str
    tokenizer: str = Field(description="the reference tokenizer n_tokens counts in")
    counts: dict[str, Any] = Field(description="input, kept, dropped by reason, quarantined")
    domains: list[dict[str, Any]] = Field(description="the catalog: one row per domain")
    shards: int
    shard_bytes: int


class CorpusDocument(BaseModel):
    id: str
    source: str
    domain: str
    lang: str | None = None
    tags: list[str]
    quality: float | None = None
    n_tokens: int
    n_chars: int
    text: str = Field(description="the text, cut to max_chars characters")
    truncated: bool


class DocumentPage(BaseModel):
    items: list[CorpusDocument]
    total: int = Field(description="documents matching the filters, across all pages")
    limit: int
    offset: int


def corpus_output(store: Store, run_id: str) -> Path:
    """The output folder of a succeeded curation job; 404 / 409 problems otherwise."""
    rows = store.query("SELECT status, output FROM jobs WHERE id = ? AND kind = 'curation'", [run_id])
    if not rows:
        raise ProblemError(404, "Not Found", f"no curation run {run_id!r}")
    status, output = rows[0]
    if status != "succeeded":
        raise ProblemError(409, "Conflict", f"curation run {run_id!r} is {status}, not succeeded")
    if not (Path(output) / "manifest.json").is_file():
        raise ProblemError(409, "Conflict", f"curation run {run_id!r}: its output has no manifest any more")
    return Path(output)


@router.get("/{run_id}", response_model=CorpusStats)
def get_corpus(run_id: str, store: Store = Depends(get_store)) -> dict[str, Any]:
    """A finished curation run's manifest counts, per-domain catalog and shards."""
    return service.corpus_stats(corpus_output(store, run_id))


@router.get("/{run_id}/documents", response_model=DocumentPage)
def list_documents(
    run_id: str,
    domain: str | None = Query(None, description=f"one of {', '.join(DOMAINS)}"),
    tag: str | None = Query(None, max_length=128, description="documents carrying this tag"),
    limit: int = Query(20, ge=1, le=500),
    offset: int = OFFSET,
    max_chars: int = Query(2000, ge=0, le=1_000_000, description="texts are cut to this many characters"),
    store: Store = Depends(get_store),
) -> dict[str, Any]:
    """A page of a corpus's documents, by id."""
    if domain is not None and domain not in DOMAINS:
        raise ProblemError(422, "Unprocessable Entity", f"field query.domain: unknown domain {domain!r}; "
                           f"expected one of {', '.join(DOMAINS)}", field="query.domain")
    output = corpus_output(store, run_id)
    items, total = service.corpus_documents(output, domain, tag, limit, offset, max_chars)
    return {"items": items, "total": total, "limit": limit, "offset": offset}
