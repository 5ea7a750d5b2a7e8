"""Mixtures: immutable, versioned specs (contract 3)."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Any, Callable

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api import service
from api.deps import ProblemError, get_store, require_token, store_of
from api.paths import DataRoots, PathError, get_roots, path_problem
from api.plans import PlanCache
from api.routes.common import NOT_FOUND, OFFSET, PROBLEMS, json_response, stored_json
from api.schemas import MixturePage, MixtureRecord
from api.state import Store
from mixer.corpora import CorpusError
from mixer.plan import PlanError
from mixer.spec import MixtureSpec

router = APIRouter(prefix="/mixtures", tags=["mixtures"], dependencies=[Depends(require_token)],
                   responses=PROBLEMS)


class MixtureValidation(BaseModel):
    valid: bool = Field(description="always true: an invalid spec is a 422 problem")
    spec: dict[str, Any] = Field(description="the spec as POST /mixtures would store it")


class PreviewSegment(BaseModel):
    source: str | None = Field(description="the mixture source; null for padding")
    domain: str | None
    padding: bool
    tokens: int
    text: str = Field(description="the decoded tokens, special tokens included, cut to max_chars")
    truncated: bool


class PreviewSequence(BaseModel):
    index: int
    segments: list[PreviewSegment]


class MixturePreview(BaseModel):
    mixture: str
    phase: str
    seq_len: int
    tokens_budget: int = Field(description="the phase budget the preview was built with")
    sequences: list[PreviewSequence]


def confined(spec: MixtureSpec, roots: DataRoots, inputs: bool = False) -> MixtureSpec:
    """``spec`` with its paths confined to the data roots (422 naming the field otherwise) and,
    with ``inputs``, its corpora and tokenizer checked on disk."""
    try:
        spec = roots.mixture(spec)
        if inputs:
            service.check_mixture_inputs(spec)
    except PathError as error:
        raise path_problem(error) from error
    return spec


def stored_spec(store: Store, name: str, version: int | None) -> MixtureSpec:
    record = store.get_mixture(name, version)
    if record is None:
        raise ProblemError(404, "Not Found", f"no mixture {name!r}" + (f" version {version}" if version else ""))
    return MixtureSpec.model_validate(record["spec"])


def plan_problem(spec: MixtureSpec, error: PlanError) -> ProblemError:
    return ProblemError(422, "Unprocessable Entity", str(error),
                        field=service.plan_error_field(spec, error.problems[0]) if error.problems else None)


@router.post("", response_model=MixtureRecord, status_code=201)
def create_mixture(
    spec: MixtureSpec, store: Store = Depends(get_store), roots: DataRoots = Depends(get_roots)
) -> dict[str, Any]:
    """Save a mixture spec: version 1 of a new name, else the next version of that name. Its
    paths must lie under the data roots; they are stored as given."""
    confined(spec, roots)
    return store.create_mixture(spec)


@router.post("/validate", response_model=MixtureValidation)
def validate_mixture(spec: MixtureSpec, roots: DataRoots = Depends(get_roots)) -> dict[str, Any]:
    """Check a spec without saving it: the schema, its paths under the data roots, its corpora
    folders with curated shards and its tokenizer usable. A problem names the bad field."""
    confined(spec, roots, inputs=True)
    return {"valid": True, "spec": spec.model_dump(mode="json")}


# Reads are async: they run on the event loop (the store's reads are cached until the next
# write, a millisecond when not), not on the thread pool, whose 40 threads fought over the GIL
# under 50 clients and gave reads a tail ten times their median.
# Their JSON is kept by the store until its next write (``stored_json``); they take the request
# rather than depend on get_store (api.deps.store_of says why).
@router.get("", response_model=MixturePage)
async def list_mixtures(
    request: Request,
    limit: int = Query(50, ge=1, le=500),
    offset: int = OFFSET,
) -> Response:
    """The latest version of every mixture, by name."""
    store = store_of(request)
    def page() -> dict[str, Any]:
        items, total = store.list_mixtures(limit, offset)
        return {"items": items, "total": total, "limit": limit, "offset": offset}

    return json_response(stored_json(store, ("mixtures", limit, offset), MixturePage, page))


@router.get("/{name}", response_model=MixtureRecord, responses=NOT_FOUND)
async def get_mixture(name: str, request: Request) -> Response:
    """The latest version of one mixture."""
    store = store_of(request)
    body = stored_json(store, ("mixture", name), MixtureRecord, lambda: store.get_mixture(name))
    return json_response(body, f"no mixture {name!r}")


@router.get("/{name}/versions", response_model=MixturePage, responses=NOT_FOUND)
async def list_mixture_versions(
    name: str,
    request: Request,
    limit: int = Query(50, ge=1, le=500),
    offset: int = OFFSET,
) -> Response:
    """Every version of one mixture, oldest first."""
    store = store_of(request)
    def page() -> dict[str, Any] | None:
        items, total = store.mixture_versions(name, limit, offset)
        return {"items": items, "total": total, "limit": limit, "offset": offset} if total else None

    body = stored_json(store, ("mixture versions", name, limit, offset), MixturePage, page)
    return json_response(body, f"no mixture {name!r}")


@router.get("/{name}/versions/{version}", response_model=MixtureRecord, responses=NOT_FOUND)
async def get_mixture_version(name: str, request: Request, version: int = Path(ge=1)) -> Response:
    """One version of one mixture; versions never change once saved."""
    store = store_of(request)
    body = stored_json(store, ("mixture version", name, version), MixtureRecord,
                       lambda: store.get_mixture(name, version))
    return json_response(body, f"no mixture {name!r} version {version}")


def plan_future(plans: PlanCache, spec: MixtureSpec, roots: DataRoots) -> Future[bytes]:
    """The plan's computation (or cached result) for a confined ``spec``. When its inputs
    cannot even be keyed (no shards, no tokenizer), the inputs check gives the 422 naming the
    field."""
    try:
        return plans.future(spec)
    except (OSError, CorpusError):
        confined(spec, roots, inputs=True)  # raises the problem for the bad field
        raise


@router.get("/{name}/plan", responses=NOT_FOUND)
async def plan_mixture(
    request: Request,
    name: str,
    version: int | None = Query(None, ge=1, description="default: the latest"),
    store: Store = Depends(get_store),
    roots: DataRoots = Depends(get_roots),
) -> Response:
    """The mixer's plan of a stored mixture (mixer.plan.MixturePlan as plan.json has it):
    tokens per source per phase and the epochs they take. A mixture its corpora cannot supply
    is a 422 problem naming the phase and source.

    Async so that requests waiting for a plan hold no thread: the blocking steps (the state
    file, paths, the cache key) run in the thread pool and the plan on the cache's own
    executor, computed once for all identical requests (``api.plans``)."""
    spec = await run_in_threadpool(lambda: confined(stored_spec(store, name, version), roots))
    plans: PlanCache = request.app.state.plans
    try:
        body = await asyncio.wrap_future(await run_in_threadpool(plan_future, plans, spec, roots))
    except PlanError as error:
        raise plan_problem(spec, error) from error
    return Response(body, media_type="application/json")


def compute_plan(roots: DataRoots) -> Callable[[MixtureSpec], dict[str, Any]]:
    """What the plan cache computes: the inputs checked (a 422 naming the field), then the plan."""
    def compute(spec: MixtureSpec) -> dict[str, Any]:
        confined(spec, roots, inputs=True)
        return service.mixture_plan(spec)

    return compute


@router.get("/{name}/preview", response_model=MixturePreview, responses=NOT_FOUND)
def preview_mixture(
    name: str,
    phase: str | None = Query(None, description="default: the first phase"),
    sequences: int = Query(4, ge=1, le=64),
    version: int | None = Query(None, ge=1, description="default: the latest"),
    max_chars: int = Query(2000, ge=0, le=1_000_000, description="each segment's text is cut to this"),
    store: Store = Depends(get_store),
    roots: DataRoots = Depends(get_roots),
) -> dict[str, Any]:
    """Decoded sample sequences of a phase, built on the fly with the phase's budget cut to
    ``sequences * seq_len`` tokens: per sequence, its segments' source, domain and text."""
    spec = stored_spec(store, name, version)
    phase = phase or spec.phases[0].name
    if phase not in [candidate.name for candidate in spec.phases]:
        raise ProblemError(404, "Not Found", f"mixture {name!r} has no phase {phase!r}")
    spec = confined(spec, roots, inputs=True)
    try:
        return service.mixture_preview(spec, phase, sequences, max_chars)
    except PlanError as error:
        raise plan_problem(spec, error) from error
