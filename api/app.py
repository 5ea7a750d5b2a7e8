"""The REST API: thin routers over the same models and functions as the CLI.

Errors are RFC 7807 problem details (``application/problem+json``), validation errors name
the field that was wrong, and request bodies are size-limited before they are parsed.
"""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api.deps import TOKEN_ENV, ProblemError, get_store, require_token
from api.schemas import Health, MixturePage, MixtureRecord, Problem
from api.state import MixtureStore
from mixer.spec import MixtureSpec

MAX_BODY_BYTES = 1 << 20
log = logging.getLogger("midtrain.api")


def _version() -> str:
    try:
        return version("midtrain")
    except PackageNotFoundError:
        return "unknown"


def problem(status: int, title: str, detail: str, field: str | None = None) -> JSONResponse:
    body = Problem(title=title, status=status, detail=detail, field=field)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status,
                        media_type="application/problem+json")


def create_app(state_path: str | None = None, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    state_path = state_path or os.environ.get("MIDTRAIN_STATE")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.store = MixtureStore(state_path)
        if not os.environ.get(TOKEN_ENV):
            log.warning("%s is not set: the API accepts requests without a token", TOKEN_ENV)
        yield
        app.state.store.close()

    app = FastAPI(title="midtrain", version=_version(), lifespan=lifespan)

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            return problem(413, "Payload Too Large", f"request bodies are limited to {max_body_bytes} bytes")
        if request.method in ("POST", "PUT", "PATCH") and declared is None:
            if len(await request.body()) > max_body_bytes:  # chunked upload: measure it
                return problem(413, "Payload Too Large", f"request bodies are limited to {max_body_bytes} bytes")
        return await call_next(request)

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, error: ProblemError) -> JSONResponse:
        return problem(error.status, error.title, error.detail, error.field)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        location = [str(part) for part in first["loc"] if part != "body"]
        field = ".".join(location) or "(body)"
        return problem(422, "Unprocessable Entity", f"field {field}: {first['msg']}", field)

    @app.get("/health", response_model=Health)
    def health() -> Health:
        return Health(status="ok", version=_version())

    authorised = [Depends(require_token)]

    @app.post("/mixtures", response_model=MixtureRecord, status_code=201, dependencies=authorised)
    def create_mixture(spec: MixtureSpec, store: MixtureStore = Depends(get_store)) -> dict:
        return store.create(spec)

    @app.get("/mixtures", response_model=MixturePage, dependencies=authorised)
    def list_mixtures(
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0),
        store: MixtureStore = Depends(get_store),
    ) -> dict:
        items, total = store.list(limit, offset)
        return {"items": items, "total": total, "limit": limit, "offset": offset}

    @app.get("/mixtures/{name}", response_model=MixtureRecord, dependencies=authorised)
    def get_mixture(name: str, store: MixtureStore = Depends(get_store)) -> dict:
        return _found(store.get(name), name)

    @app.get("/mixtures/{name}/versions/{version}", response_model=MixtureRecord, dependencies=authorised)
    def get_mixture_version(name: str, version: int, store: MixtureStore = Depends(get_store)) -> dict:
        return _found(store.get(name, version), f"{name} version {version}")

    return app


def _found(record: dict | None, what: str) -> dict:
    if record is None:
        raise ProblemError(404, "Not Found", f"no mixture {what}")
    return record


def serve(host: str = "127.0.0.1", port: int = 8000, state_path: str | None = None) -> None:
    import uvicorn

    uvicorn.run(create_app(state_path), host=host, port=port)
