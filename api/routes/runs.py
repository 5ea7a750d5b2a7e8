"""Curation runs, mix builds and training runs: jobs on Ray (``api.jobs``). Each kind has its
launch endpoint; status, list, logs, cancel and artefacts are the same for all three."""

from __future__ import annotations

import json
from pathlib import Path as FilePath
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse

from api.deps import ProblemError, get_jobs, get_store, jobs_of, require_token
from api.jobs import RUNNING, Jobs, JobStateError
from api.launch import curation_request, mix_build_request, training_request
from api.routes.common import NOT_FOUND, OFFSET, PROBLEMS, found
from api.schemas import (Artefact, CurationRunRequest, JobPage, JobRecord, LogPage, MixBuildRequest, Problem,
                         RecordPage, TrainingRunRequest)
from api.state import Store

_LAUNCHED: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "a running job writes to the same output"},
}

router = APIRouter(dependencies=[Depends(require_token)], responses=PROBLEMS)
JobId = Path(pattern=r"^[a-z]+-[0-9a-f]{12}$", max_length=64)


def _launch(jobs: Jobs, kind: str, request: dict, output: str) -> dict[str, Any]:
    running, _ = jobs.list(None, RUNNING, 500, 0)
    clash = next((job for job in running if job["output"] == output), None)
    if clash is not None:
        raise ProblemError(409, "Conflict", f"job {clash['id']} is running and writes to {output}", field="output")
    return jobs.launch(kind, request, output)


@router.post("/curation-runs", response_model=JobRecord, status_code=202, tags=["curation-runs"],
             responses=_LAUNCHED)
def launch_curation_run(body: CurationRunRequest, request: Request, store: Store = Depends(get_store),
                        jobs: Jobs = Depends(get_jobs)) -> dict[str, Any]:
    """Curate the config's sources into its output, on Ray."""
    config, output = curation_request(store, request.app.state.roots, body.config)
    return _launch(jobs, "curation", config, output)


@router.post("/mix-builds", response_model=JobRecord, status_code=202, tags=["mix-builds"], responses=_LAUNCHED)
def launch_mix_build(body: MixBuildRequest, request: Request, store: Store = Depends(get_store),
                     jobs: Jobs = Depends(get_jobs)) -> dict[str, Any]:
    """Build every phase of a saved mixture version, on Ray."""
    spec, output = mix_build_request(store, request.app.state.roots, jobs.runs_root, body.mixture, body.version,
                                     body.output)
    return _launch(jobs, "mix-build", spec, output)


@router.post("/training-runs", response_model=JobRecord, status_code=202, tags=["training-runs"],
             responses=_LAUNCHED)
def launch_training_run(body: TrainingRunRequest, request: Request, jobs: Jobs = Depends(get_jobs)) -> dict[str, Any]:
    """Train through the spec's phases, on Ray (a GPU when the cluster has one)."""
    spec, output = training_request(jobs, request.app.state.roots, body.spec, body.mix_build)
    return _launch(jobs, "training", spec, output)


def _job(jobs: Jobs, kind: str, job_id: str) -> dict[str, Any]:
    return found(jobs.get(job_id, kind), f"no {kind} job {job_id!r}")


def _output_file(record: dict[str, Any], relative: str) -> FilePath:
    """A file of the job's output, never outside it (no '..', no symlink out)."""
    base = FilePath(record["output"]).resolve()
    path = (base / relative).resolve()
    if ".." in FilePath(relative).parts or not path.is_relative_to(base):
        raise ProblemError(422, "Unprocessable Content", f"path {relative!r} leaves the job's output", field="path")
    if not path.is_file():
        raise ProblemError(404, "Not Found", f"no file {relative!r} in {record['id']}'s output", field="path")
    return path


def _add_job_routes(prefix: str, kind: str) -> None:
    """list, get, logs, cancel and artefacts of one kind of job, under ``prefix``."""
    tag = prefix.strip("/")

    # reads on the event loop, as the mixtures' are (api/routes/mixtures.py says why), taking the
    # request rather than depending on get_jobs (api.deps.store_of says why)
    @router.get(prefix, response_model=JobPage, tags=[tag], name=f"list_{tag}")
    async def list_jobs(request: Request,
                        status: str | None = Query(None, pattern="^(running|succeeded|failed|cancelled)$"),
                        limit: int = Query(50, ge=1, le=500), offset: int = OFFSET) -> dict[str, Any]:
        """Newest first."""
        items, total = jobs_of(request).list(kind, status, limit, offset)
        return {"items": items, "total": total, "limit": limit, "offset": offset}

    @router.get(prefix + "/{job_id}", response_model=JobRecord, tags=[tag], responses=NOT_FOUND,
                name=f"get_{tag}")
    async def get_job(request: Request, job_id: str = JobId) -> dict[str, Any]:
        """Status, progress and, once finished, the result or the error."""
        return _job(jobs_of(request), kind, job_id)

    @router.get(prefix + "/{job_id}/logs", response_model=LogPage, tags=[tag], responses=NOT_FOUND,
                name=f"logs_{tag}")
    def job_logs(job_id: str = JobId, offset: int = OFFSET, limit: int = Query(1000, ge=1, le=10_000),
                 jobs: Jobs = Depends(get_jobs)) -> dict[str, Any]:
        """The job's progress lines from ``offset``."""
        _job(jobs, kind, job_id)
        lines, next_offset = jobs.files(job_id).log_lines(offset, limit)
        return {"lines": lines, "next_offset": next_offset}

    @router.post(prefix + "/{job_id}/cancel", response_model=JobRecord, tags=[tag], responses=NOT_FOUND,
                 name=f"cancel_{tag}")
    def cancel_job(job_id: str = JobId, jobs: Jobs = Depends(get_jobs)) -> dict[str, Any]:
        """Stop a running job (it is not resumed); 409 when it has finished."""
        _job(jobs, kind, job_id)
        try:
            return jobs.cancel(job_id)
        except JobStateError as error:
            raise ProblemError(409, "Conflict", str(error)) from None

    @router.get(prefix + "/{job_id}/artefacts", response_model=list[Artefact], tags=[tag], responses=NOT_FOUND,
                name=f"artefacts_{tag}")
    def list_artefacts(job_id: str = JobId, jobs: Jobs = Depends(get_jobs)) -> list[dict[str, Any]]:
        """Every file of the job's output, by path."""
        base = FilePath(_job(jobs, kind, job_id)["output"])
        if not base.is_dir():
            return []
        return [{"path": str(path.relative_to(base)), "bytes": path.stat().st_size}
                for path in sorted(base.rglob("*")) if path.is_file() and not path.is_symlink()]

    @router.get(prefix + "/{job_id}/artefacts/{path:path}", tags=[tag], responses=NOT_FOUND,
                response_class=FileResponse, name=f"artefact_{tag}")
    def get_artefact(job_id: str = JobId, path: str = Path(max_length=1000),
                     jobs: Jobs = Depends(get_jobs)) -> FileResponse:
        """One file of the job's output."""
        return FileResponse(_output_file(_job(jobs, kind, job_id), path))


@router.get("/runs", response_model=JobPage, tags=["runs"])
def list_runs(kind: str | None = Query(None, pattern="^(curation|mix-build|training)$"),
              status: str | None = Query(None, pattern="^(running|succeeded|failed|cancelled)$"),
              limit: int = Query(50, ge=1, le=500), offset: int = OFFSET,
              jobs: Jobs = Depends(get_jobs)) -> dict[str, Any]:
    """Jobs of every kind (or one), newest first."""
    items, total = jobs.list(kind, status, limit, offset)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


_add_job_routes("/curation-runs", "curation")
_add_job_routes("/mix-builds", "mix-build")
_add_job_routes("/training-runs", "training")


@router.get("/mix-builds/{job_id}/report", tags=["mix-builds"], responses=NOT_FOUND)
def mix_build_report(job_id: str = JobId, jobs: Jobs = Depends(get_jobs)) -> dict[str, Any]:
    """The build's report.json: per phase and source, target and realised shares, packing."""
    return json.loads(_output_file(_job(jobs, "mix-build", job_id), "report.json").read_text())


@router.get("/training-runs/{job_id}/metrics", response_model=RecordPage, tags=["training-runs"],
            responses=NOT_FOUND)
def training_metrics(job_id: str = JobId, file: str = Query("metrics", pattern="^(metrics|eval)$"),
                     offset: int = OFFSET, limit: int = Query(1000, ge=1, le=10_000),
                     jobs: Jobs = Depends(get_jobs)) -> dict[str, Any]:
    """Lines of metrics.jsonl (per step) or eval.jsonl (held-out and phase-end evaluations)
    from ``offset``, as they are written."""
    record = _job(jobs, "training", job_id)
    path = FilePath(record["output"]) / f"{file}.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    records = []
    for line in lines[offset:offset + limit]:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # the line being written: read it next time
            break
    return {"records": records, "next_offset": offset + len(records)}
