"""The REST API: thin routers over the same models and store as the CLI.

Every error is an RFC 7807 problem (``application/problem+json``): validation errors name the
field that was wrong, unknown routes and methods are problems too, and an unexpected failure
is a 500 problem that shows no internals. Request bodies are size-limited before any route
sees them (``BodySizeLimit``).
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from importlib.metadata import PackageNotFoundError, version as package_version
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import TOKEN_ENV, ProblemError
from api.jobs import RECONCILE_SECONDS, Jobs, Reconciler, default_runs_root
from api.paths import DataRoots, PathError
from api.plans import PlanCache
from api.routes import ROUTERS
from api.routes.mixtures import compute_plan
from api.schemas import FieldError, Health, Problem
from api.state import Store

MAX_BODY_ENV = "MIDTRAIN_MAX_BODY_BYTES"
MAX_BODY_BYTES = 1 << 20  # a mixture spec is a few KiB; 1 MiB leaves room and bounds memory
PROBLEM_JSON = "application/problem+json"

log = logging.getLogger("midtrain.api")


def api_version() -> str:
    try:
        return package_version("midtrain")
    except PackageNotFoundError:
        return "unknown"


def problem(
    status: int,
    detail: str,
    title: str | None = None,
    field: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    # type stays about:blank, so by RFC 7807 the title is the HTTP status phrase.
    body = Problem(title=title or HTTPStatus(status).phrase, status=status, detail=detail,
                   field=field, errors=errors)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status,
                        media_type=PROBLEM_JSON, headers=headers)


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with a 413 problem, counting the bytes that
    arrive (a chunked upload declares no length) and holding at most ``max_bytes`` in memory.

    Hand-written rather than FastAPI's ``max_body_size``: when a declared Content-Length is
    over the limit, that one replaces whatever the app answers with a text/plain 413, and every
    error here is problem+json. Buffering is fine at this limit (1 MiB): specs are small."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, chunked = _body_headers(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)  # before reading a byte of it
            return
        if not chunked and not declared:
            # No body: HTTP/1.1 gives a request a body only with a Content-Length or a
            # Transfer-Encoding (RFC 9112, 6.3). Reads, most of the traffic, skip the buffering.
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left; nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break

        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later calls wait for the disconnect, as the server's would

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(413, f"request bodies are limited to {self.max_bytes} bytes")
        await response(scope, receive, send)


def _body_headers(scope: Scope) -> tuple[int | None, bool]:
    """The declared Content-Length (None when absent, or malformed: the server rejects those
    before we see them, and such a request is buffered and counted as a chunked one would be),
    and whether there is a Transfer-Encoding (or a malformed length): a body of unknown size."""
    declared, unknown = None, False
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                unknown = True
        elif key == b"transfer-encoding":
            unknown = True
    return declared, unknown


def _field_errors(error: RequestValidationError) -> list[FieldError]:
    """One entry per validation error, its field as a dotted path into the request: body
    fields bare (``phases.0.sources.1.weight``), others by where they came from (``query.limit``)."""
    found = []
    for item in error.errors():
        location = [str(part) for part in item["loc"]]
        if location and location[0] == "body":
            location = location[1:]
        message = str(item["msg"]).removeprefix("Value error, ")
        if item.get("type") == "json_invalid":
            # The location is a character offset, not a field: report the body as a whole.
            location = []
            message = f"invalid JSON at character {item['loc'][-1]}: {item.get('ctx', {}).get('error', message)}"
        found.append(FieldError(field=".".join(location) or "(body)", message=message))
    return found


def _install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, error: ProblemError) -> JSONResponse:
        return problem(error.status, error.detail, error.title, error.field, headers=error.headers)

    @app.exception_handler(PathError)
    async def _outside(request: Request, error: PathError) -> JSONResponse:
        return problem(422, str(error), field=error.field)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = _field_errors(error)
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return problem(422, f"field {first.field}: {first.message}{more}", field=first.field, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        # Unknown routes (404) and wrong methods (405) come this way.
        return problem(error.status_code, str(error.detail), headers=getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "an unexpected error occurred; see the server log")


def _document_problems_as_problem_json(app: FastAPI) -> None:
    """FastAPI documents every response model as application/json; errors are sent as
    application/problem+json, so the document says that for each 4xx and 5xx response."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            document = build()
            for operations in document["paths"].values():
                for operation in operations.values():
                    for status, response in operation.get("responses", {}).items():
                        content = response.get("content", {})
                        if status[0] in "45" and "application/json" in content:
                            content[PROBLEM_JSON] = content.pop("application/json")
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi


def create_app(state_path: str | None = None, max_body_bytes: int | None = None,
               data_roots: DataRoots | None = None, runs_root: str | Path | None = None,
               reconcile_seconds: float = RECONCILE_SECONDS) -> FastAPI:
    """The API over the DuckDB state at ``state_path`` (else ``$MIDTRAIN_STATE``, else
    ``runs/midtrain-state.duckdb``). The bearer token (``$MIDTRAIN_API_TOKEN``) and the body
    limit (argument, else ``$MIDTRAIN_MAX_BODY_BYTES``, else 1 MiB) are read once, here. Jobs
    keep their files under ``runs_root`` (else ``$MIDTRAIN_RUNS``, else ``runs`` in the first
    data root), which must be on storage every Ray node sees."""
    token = os.environ.get(TOKEN_ENV) or None
    if max_body_bytes is None:
        max_body_bytes = int(os.environ.get(MAX_BODY_ENV) or MAX_BODY_BYTES)
    roots = data_roots or DataRoots.from_env()
    runs = Path(runs_root).resolve() if runs_root else default_runs_root(roots.roots[0])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Opened here, not at import, so the state file is locked only while serving.
        app.state.store = Store(state_path)
        app.state.jobs = Jobs(app.state.store, runs)
        app.state.plans = PlanCache(compute_plan(roots))  # plans of stored mixtures (api.plans)
        # Running jobs from before a restart are reconciled by the first pass, right away.
        reconciler = Reconciler(app.state.jobs, reconcile_seconds)
        reconciler.start()
        # Everything imported so far (Ray, pyarrow, torch, the models: millions of objects)
        # lives as long as the server; frozen, the collector's full passes skip it. They
        # scanned it all and stalled every request for their length: a p99 ten times the p50.
        gc.freeze()
        if token is None:
            log.warning("%s is not set: the API accepts requests without a token", TOKEN_ENV)
        try:
            yield
        finally:
            reconciler.stop()  # the jobs go on: their actors are detached
            app.state.plans.close()
            app.state.store.close()

    app = FastAPI(title="midtrain", version=api_version(), lifespan=lifespan,
                  description="Define LLM mid-training mixtures; errors are RFC 7807 problems.")
    app.state.api_token = token
    app.state.roots = roots  # api.paths: where request paths may point
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    _install_problem_handlers(app)
    _document_problems_as_problem_json(app)

    @app.get("/health", response_model=Health, tags=["health"])
    def health() -> Health:
        """Liveness, without auth: for container health checks."""
        return Health(status="ok", version=api_version())

    for router in ROUTERS:
        app.include_router(router)
    return app


def serve(host: str = "127.0.0.1", port: int = 8000, state_path: str | None = None,
          log_level: str = "info", access_log: bool = True) -> None:
    """Run the API under uvicorn, one process: the DuckDB state file admits one writer. The
    access log (a line per request) is on by default; a line costs about 0.1 ms of CPU."""
    import uvicorn

    uvicorn.run(create_app(state_path), host=host, port=port, log_level=log_level, access_log=access_log)
