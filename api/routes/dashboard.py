"""The dashboard: ``GET /dashboard``, one HTML page with plain JavaScript that draws runs,
mixtures and reports from the JSON endpoints, and the run-folder endpoints it reads.

The page itself holds no data and is served without a token; everything it shows it fetches
with the bearer token the user types in (kept in ``sessionStorage``, or passed once as
``#token=...`` in the URL fragment, which never reaches the server). Charts are inline SVG drawn
in the browser: nothing is loaded from anywhere else.

Run folders are the directories directly under the runs root (``$MIDTRAIN_RUNS``, else
``runs`` in the first data root) that hold a training output: ``train/`` as ``midtrain recipe
run`` leaves it, or ``metrics.jsonl`` itself. A name from a request is one path component,
confined to the runs root by ``api.paths`` (symlinks resolved), and a run's ``report.html``
must lie inside its folder: no other file can be served through these routes. The numbers come
from ``trainer.report.run_data`` and the report from ``midtrain report RUN``; nothing here
computes either.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from api.deps import ProblemError, require_token
from api.paths import DataRoots, PathError, path_problem
from api.routes.common import NOT_FOUND, OFFSET, PROBLEMS
from api.routes.dashboard_page import PAGE

router = APIRouter()
protected = APIRouter(prefix="/dashboard", tags=["dashboard"], dependencies=[Depends(require_token)],
                      responses=PROBLEMS)
RunName = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=128)


class RunFolder(BaseModel):
    name: str
    recipe: str | None = Field(description="the recipe named in recipe.json, if any")
    has_report: bool = Field(description="report.html has been written (midtrain report RUN)")
    modified: float = Field(description="the folder's last change, seconds since the epoch")


class RunFolderPage(BaseModel):
    items: list[RunFolder]
    total: int
    limit: int
    offset: int


def runs_root(request: Request) -> FilePath:
    return FilePath(request.app.state.jobs.runs_root)


def is_run(folder: FilePath) -> bool:
    return (folder / "train").is_dir() or (folder / "metrics.jsonl").is_file()


def run_folder(request: Request, name: str) -> FilePath:
    """The run folder ``name`` under the runs root (422 outside it, 404 when it holds no run)."""
    root = runs_root(request)
    try:
        folder = DataRoots((root,)).confine(name, "name")
    except PathError as error:
        raise path_problem(error) from error
    if folder == root.resolve() or not folder.is_dir() or not is_run(folder):
        raise ProblemError(404, "Not Found", f"no run folder {name!r} under the runs root", field="name")
    return folder


def recipe_name(folder: FilePath) -> str | None:
    import json

    try:
        value = json.loads((folder / "recipe.json").read_text()).get("recipe")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def list_folders(root: FilePath) -> list[dict[str, Any]]:
    if not root.is_dir():
        return []
    confine = DataRoots((root,)).confine
    found = []
    for folder in root.iterdir():
        try:
            resolved = confine(folder.name, "name")
        except PathError:  # a link out of the runs root
            continue
        if resolved.is_dir() and is_run(resolved):
            found.append({"name": folder.name, "recipe": recipe_name(resolved),
                          "has_report": (resolved / "report.html").is_file(),
                          "modified": resolved.stat().st_mtime})
    return sorted(found, key=lambda item: (-item["modified"], item["name"]))


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
def dashboard() -> HTMLResponse:
    """The page (public: it holds no data; what it fetches needs the token)."""
    return HTMLResponse(PAGE, headers={
        "Cache-Control": "no-store",
        # the page runs only its own inline script and talks only to this server; a report opens
        # in a sandboxed frame of its text (srcdoc)
        "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                                   "img-src data:; connect-src 'self'; frame-src 'self'; base-uri 'none'; "
                                   "form-action 'none'",
    })


@protected.get("/runs", response_model=RunFolderPage)
def list_run_folders(request: Request, limit: int = Query(50, ge=1, le=500),
                     offset: int = OFFSET) -> dict[str, Any]:
    """Run folders under the runs root, newest first."""
    found = list_folders(runs_root(request))
    return {"items": found[offset:offset + limit], "total": len(found), "limit": limit, "offset": offset}


@protected.get("/runs/{name}", responses=NOT_FOUND)
async def get_run_folder(request: Request, name: str = RunName,
                         max_points: int = Query(500, ge=2, le=10_000)) -> dict[str, Any]:
    """A run's curves (loss overall and per domain, LR, against tokens), phases, composition per
    phase (target and realised), phase-end evaluations, final figures, and what is missing."""
    from trainer.report import run_data

    folder = run_folder(request, name)
    return await run_in_threadpool(run_data, folder, max_points, False)


# Documented by hand: with response_class=HTMLResponse FastAPI would document the problems as
# text/html too, and they are application/problem+json.
_REPORT = {200: {"description": "the report, one self-contained HTML page",
                 "content": {"text/html": {"schema": {"type": "string"}}}}, **NOT_FOUND}


@protected.get("/runs/{name}/report", response_model=None, responses=_REPORT)
def get_run_report(request: Request, name: str = RunName) -> HTMLResponse:
    """The run's report.html (written by ``midtrain report RUN``), self-contained."""
    folder = run_folder(request, name)
    report = (folder / "report.html").resolve()
    if not report.is_relative_to(folder) or not report.is_file():
        raise ProblemError(404, "Not Found", f"run {name!r} has no report.html; write it with `midtrain report`",
                           field="name")
    return HTMLResponse(report.read_text(), headers={"Cache-Control": "no-store"})


router.include_router(protected)
