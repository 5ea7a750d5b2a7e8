"""Jobs: curation runs, mixture builds and training runs, each run by a detached Ray actor.

A job's record lives in the state file (table ``jobs``, written by the API process only); what
the job itself says lives in its directory on the shared volume, ``RUNS/jobs/<id>/``:

    log.txt        its progress lines, appended as they come
    progress.json  the latest: stage, message, documents processed (curation), time
    result.json    written once, last, atomically: succeeded with a summary, or failed with a
                   one-line error. Its presence means the job is over.
    cancel         the API asked to cancel: never resume this job

The actor (``JobActor``, named ``midtrain-job-<id>`` in the ``midtrain`` namespace) is
detached, so it outlives the API process that launched it: an API restarted against the same
Ray cluster finds its jobs still running. ``reconcile`` brings the records into agreement with
reality, on start and every few seconds: a job whose result exists is finished (and its actor
ended); a job whose actor is gone without a result lost its worker, and is launched again with
``resume`` (curation and training continue from what they staged or checkpointed; a build is
deterministic and starts over), up to ``MAX_ATTEMPTS`` launches. Without ``RAY_ADDRESS`` the
API starts a local Ray instance that ends with it; the next API process resumes its jobs the
same way.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from corpus.files import write_text_atomic
from api.state import Store, utc_now

JobKind = Literal["curation", "mix-build", "training"]
KINDS: tuple[str, ...] = ("curation", "mix-build", "training")
RUNNING, SUCCEEDED, FAILED, CANCELLED = "running", "succeeded", "failed", "cancelled"
NAMESPACE = "midtrain"
RUNS_ENV = "MIDTRAIN_RUNS"
MAX_ATTEMPTS = 3  # launches of one job: the first, and two resumes after lost workers
RECONCILE_SECONDS = 2.0

log = logging.getLogger("midtrain.jobs")


class JobStateError(Exception):
    """An action the job's status does not allow (cancelling a finished job)."""


def actor_name(job_id: str) -> str:
    return f"midtrain-job-{job_id}"


JOBS_DIR = "jobs"  # under the runs root, a folder per job
PROGRESS_FILE = "progress.json"


def read_json_file(path: str | os.PathLike) -> dict | None:
    """A JSON file's content; None when it is missing or not (yet) whole JSON. One plain read:
    a page of jobs reads a progress file per job on every request."""
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:  # progress.json mid-rewrite cannot happen (atomic), but be safe
        return None


@dataclass(frozen=True)
class JobFiles:
    """The files a job writes in its directory, and reading them back."""

    directory: Path

    @property
    def log(self) -> Path:
        return self.directory / "log.txt"

    @property
    def progress(self) -> Path:
        return self.directory / PROGRESS_FILE

    @property
    def result(self) -> Path:
        return self.directory / "result.json"

    @property
    def cancel(self) -> Path:
        return self.directory / "cancel"

    def read_json(self, path: Path) -> dict | None:
        return read_json_file(path)

    def log_lines(self, offset: int = 0, limit: int = 1000) -> tuple[list[str], int]:
        """Lines ``offset`` .. ``offset + limit`` of the log, and the offset after them."""
        try:
            with self.log.open() as handle:
                lines = handle.read().splitlines()
        except FileNotFoundError:
            lines = []
        page = lines[offset:offset + limit]
        return page, offset + len(page)


# ---------------------------------------------------------------------------------------------
# In the actor: running one job


# The stage a curation run is in, from its progress lines (pipelines.curate's wording).
CURATION_STAGES: tuple[tuple[str, str], ...] = (
    ("kept,", "done"),
    ("fuzzy dedup:", "finalize"),
    ("staged ", "dedup"),
    ("files in", "stage"),
)


def stage_of(kind: str, line: str) -> str | None:
    """The stage a progress line shows: for curation one of stage, dedup, finalize, done; for
    training the phase (``train[anneal] ...``); for a build the phase being packed."""
    if kind == "curation":
        return next((stage for marker, stage in CURATION_STAGES if marker in line), None)
    head = line.split(" ", 1)[0]
    if "[" in head and head.endswith("]"):
        return head[head.index("[") + 1:-1]
    return None


class JobReporter:
    """Appends progress lines to the log and keeps ``progress.json`` current."""

    def __init__(self, kind: str, files: JobFiles) -> None:
        self.kind, self.files = kind, files
        self.stage: str | None = None
        self.documents: int | None = None
        self.message = ""
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            with self.files.log.open("a") as handle:
                handle.write(line.rstrip("\n") + "\n")
            self.stage = stage_of(self.kind, line) or self.stage
            self.message = line
            self._write()

    def count(self, documents: int) -> None:
        """Documents processed so far; never goes back (finalize removes the staging files
        that the count is read from)."""
        with self._lock:
            if self.documents is None or documents > self.documents:
                self.documents = documents
                self._write()

    def _write(self) -> None:
        record = {"stage": self.stage, "message": self.message, "documents": self.documents,
                  "updated_at": utc_now().isoformat() + "Z"}
        write_text_atomic(self.files.progress, json.dumps(record) + "\n")


def staged_documents(output: Path) -> int:
    """Documents a curation run has staged so far: rows of the staging files written whole."""
    import pyarrow.parquet as pq

    from pipelines.staging import STAGING

    total = 0
    for path in (output / STAGING).glob("*/input-*.parquet"):
        try:
            total += pq.read_metadata(path).num_rows
        except (OSError, ValueError):  # being written: counted once it is whole
            continue
    return total


def execute(kind: str, request: dict, output: str, progress: Callable[[str], None], resume: bool) -> dict:
    """Run one job to its end; returns its summary."""
    from api import service

    if kind == "curation":
        from pipelines.config import CurateConfig

        manifest = service.curate(CurateConfig.model_validate(request), progress=progress, resume=resume)
        return {"output": output, "run_id": manifest.run_id, "counts": manifest.counts.model_dump(mode="json")}
    if kind == "mix-build":
        from mixer.spec import MixtureSpec

        report = service.mix_build(MixtureSpec.model_validate(request), output, progress=progress)
        return {"output": output, "fingerprint": report.fingerprint,
                "phases": {phase.name: {"sequences": phase.n_sequences, "tokens_real": phase.tokens_real,
                                        "max_share_error": phase.max_share_error} for phase in report.phases}}
    if kind == "training":
        from trainer.spec import TrainSpec
        from trainer.train import run_training

        summary = run_training(TrainSpec.model_validate(request), progress=progress, resume=resume)
        return {"output": output, **{key: summary[key] for key in ("steps", "tokens", "wall_seconds") if key in summary}}
    raise ValueError(f"unknown job kind {kind!r}")


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 2000 else text[:1997] + "..."


def run_job(kind: str, request: dict, output: str, directory: str, resume: bool) -> None:
    """The job's whole life in the actor: run it, then write ``result.json``. Every failure,
    whatever it is, ends as a failed result naming it."""
    from pipelines.runtime import configure_ray_data

    configure_ray_data()
    files = JobFiles(Path(directory))
    reporter = JobReporter(kind, files)
    done = threading.Event()
    counter = None
    if kind == "curation":  # documents processed, while the Ray tasks stage them
        def count() -> None:
            while not done.wait(2.0):
                reporter.count(staged_documents(Path(output)))

        counter = threading.Thread(target=count, daemon=True, name="count-staged")
        counter.start()
    try:
        reporter(f"job: {kind} {'resumed' if resume else 'started'}")
        summary = execute(kind, request, output, reporter, resume)
        outcome: dict[str, Any] = {"status": SUCCEEDED, "result": summary}
    except BaseException as error:  # noqa: BLE001 - the job's outcome must be written, whatever it was
        outcome = {"status": FAILED, "error": f"{type(error).__name__}: {one_line(error)}"}
        with files.log.open("a") as handle:
            handle.write(traceback.format_exc())
    finally:
        done.set()
        if counter is not None:
            counter.join()
    if kind == "curation" and outcome["status"] == SUCCEEDED:  # the manifest's count is the final one
        reporter.count(outcome["result"]["counts"]["input"])
    outcome["finished_at"] = utc_now().isoformat() + "Z"
    write_text_atomic(files.result, json.dumps(outcome) + "\n")


class JobActor:
    """Runs one job in a thread started by its constructor, so the job does not depend on
    anyone waiting for a method's result: the API that launched it may go away. ``reconcile``
    ends the actor once the result is written."""

    def __init__(self, kind: str, request: dict, output: str, directory: str, resume: bool) -> None:
        self.thread = threading.Thread(target=run_job, args=(kind, request, output, directory, resume),
                                       name="job", daemon=True)
        self.thread.start()

    def alive(self) -> bool:
        return self.thread.is_alive()


def actor_resources(kind: str) -> dict[str, float]:
    """What a job's actor asks Ray for. A curation run drives Ray Data tasks, which ask for
    their own CPUs, so its actor asks for none; a build packs in its own process (one CPU);
    training asks for a GPU when the cluster has one, else the node's CPUs."""
    if kind == "curation":
        return {"num_cpus": 0}
    if kind == "mix-build":
        return {"num_cpus": 1}
    from api.service import training_resources

    return training_resources()


def launch_actor(job_id: str, kind: str, request: dict, output: str, directory: Path, resume: bool) -> None:
    import ray

    from pipelines.runtime import ensure_ray

    ensure_ray(log_to_driver=False)  # the job writes its own log.txt
    remote = ray.remote(JobActor).options(
        name=actor_name(job_id), namespace=NAMESPACE, lifetime="detached", max_restarts=0,
        max_concurrency=2, **actor_resources(kind),
    )
    remote.remote(kind, request, output, str(directory), resume)


def actor_alive(job_id: str) -> bool:
    """Whether the job's actor exists (pending placement counts: it will start)."""
    import ray

    try:
        ray.get_actor(actor_name(job_id), namespace=NAMESPACE)
    except ValueError:  # no actor of that name: never started, ended, or died
        return False
    return True


def end_actor(job_id: str) -> None:
    import ray

    try:
        ray.kill(ray.get_actor(actor_name(job_id), namespace=NAMESPACE), no_restart=True)
    except ValueError:
        pass  # already gone: nothing to end


# ---------------------------------------------------------------------------------------------
# In the API: records


def default_runs_root(first_root: Path) -> Path:
    """Where job files go unless told: ``$MIDTRAIN_RUNS``, else ``runs`` in the first data root."""
    return Path(os.environ.get(RUNS_ENV) or first_root / "runs").resolve()



_COLUMNS = "id, kind, status, request, output, created_at, finished_at, attempts, error, result"


class Jobs:
    """The job records of one state file, and the job directories under ``runs_root``."""

    def __init__(self, store: Store, runs_root: Path) -> None:
        self.store, self.runs_root = store, Path(runs_root)
        self._reconciling = threading.Lock()
        # recorded but their actors not yet created: a reconcile pass must not take them for lost
        self._launching: set[str] = set()

    def files(self, job_id: str) -> JobFiles:
        return JobFiles(self.runs_root / JOBS_DIR / job_id)

    def launch(self, kind: str, request: dict, output: str) -> dict[str, Any]:
        """Record a new job and start its actor; returns the record."""
        job_id = f"{kind.replace('-', '')[:5]}-{uuid.uuid4().hex[:12]}"
        files = self.files(job_id)
        files.directory.mkdir(parents=True, exist_ok=False)
        self._launching.add(job_id)
        try:
            self.store.execute(
                f"INSERT INTO jobs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL, 1, NULL, NULL)",
                [job_id, kind, RUNNING, json.dumps(request), output, utc_now()],
            )
            launch_actor(job_id, kind, request, output, files.directory, resume=False)
        except Exception as error:
            self._finish(job_id, FAILED, error=f"could not start on Ray: {one_line(error)}")
            raise
        finally:
            self._launching.discard(job_id)
        return self.get(job_id)

    def get(self, job_id: str, kind: str | None = None) -> dict[str, Any] | None:
        rows = self.store.query(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", [job_id])
        if not rows or (kind is not None and rows[0][1] != kind):
            return None
        return self._record(rows[0])

    def list(self, kind: str | None, status: str | None, limit: int, offset: int) -> tuple[list[dict], int]:
        """Newest first."""
        where, parameters = [], []
        if kind is not None:
            where.append("kind = ?")
            parameters.append(kind)
        if status is not None:
            where.append("status = ?")
            parameters.append(status)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.store.query(
            f"SELECT {_COLUMNS} FROM jobs {clause} ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
            [*parameters, limit, offset])
        total = self.store.query(f"SELECT count(*) FROM jobs {clause}", parameters)[0][0]
        return [self._record(row) for row in rows], int(total)

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Stop a running job: it will not be resumed. Cancelling a finished job is refused."""
        record = self.get(job_id)
        if record is None:
            raise KeyError(job_id)
        if record["status"] != RUNNING:
            raise JobStateError(f"job {job_id} is {record['status']}; only a running job can be cancelled")
        files = self.files(job_id)
        files.cancel.write_text(utc_now().isoformat() + "Z\n")
        end_actor(job_id)
        with files.log.open("a") as handle:
            handle.write("job: cancelled by request\n")
        self._finish(job_id, CANCELLED, error="cancelled by request")
        return self.get(job_id)

    def reconcile(self) -> list[str]:
        """Bring every running record into agreement with its job; returns what changed, a line
        each. Safe to call from several threads: one pass at a time."""
        changes: list[str] = []
        with self._reconciling:
            for row in self.store.query(f"SELECT {_COLUMNS} FROM jobs WHERE status = ?", [RUNNING]):
                if row[0] in self._launching:
                    continue
                change = self._reconcile_one(self._record(row, with_progress=False))
                if change:
                    changes.append(change)
                    log.info("reconcile: %s", change)
        return changes

    def _reconcile_one(self, record: dict[str, Any]) -> str | None:
        job_id, files = record["id"], self.files(record["id"])
        outcome = files.read_json(files.result)
        if outcome is not None:
            end_actor(job_id)
            self._finish(job_id, outcome["status"], error=outcome.get("error"), result=outcome.get("result"))
            return f"{job_id}: {outcome['status']}"
        if files.cancel.exists():
            end_actor(job_id)
            self._finish(job_id, CANCELLED, error="cancelled by request")
            return f"{job_id}: cancelled"
        if actor_alive(job_id):
            return None
        if record["attempts"] >= MAX_ATTEMPTS:
            self._finish(job_id, FAILED, error=f"its worker was lost {record['attempts']} times")
            return f"{job_id}: failed, worker lost {record['attempts']} times"
        with files.log.open("a") as handle:
            handle.write(f"job: worker lost; launching again with resume (attempt {record['attempts'] + 1})\n")
        launch_actor(job_id, record["kind"], record["request"], record["output"], files.directory, resume=True)
        self.store.execute("UPDATE jobs SET attempts = attempts + 1 WHERE id = ? AND status = ?", [job_id, RUNNING])
        return f"{job_id}: resumed after its worker was lost"

    def _finish(self, job_id: str, status: str, error: str | None = None, result: dict | None = None) -> None:
        # only a running job finishes, once: a cancel and a result arriving together cannot both land
        self.store.execute(
            "UPDATE jobs SET status = ?, finished_at = ?, error = ?, result = ? WHERE id = ? AND status = ?",
            [status, utc_now(), error, json.dumps(result) if result is not None else None, job_id, RUNNING],
        )

    def _record(self, row: tuple, with_progress: bool = True) -> dict[str, Any]:
        job_id, kind, status, request, output, created_at, finished_at, attempts, error, result = row
        record = {
            "id": job_id, "kind": kind, "status": status, "request": json.loads(request), "output": output,
            "created_at": created_at.isoformat() + "Z",
            "finished_at": finished_at.isoformat() + "Z" if finished_at else None,
            "attempts": int(attempts), "error": error, "result": json.loads(result) if result else None,
        }
        if with_progress:
            record["progress"] = self._progress(job_id)
        return record

    def _progress(self, job_id: str) -> dict | None:
        """The job's ``JobFiles.progress``, its path joined as a string: a page of jobs reads one
        per job on every request, and the Path objects of ``files`` cost more than the read."""
        return read_json_file(os.path.join(self.runs_root, JOBS_DIR, job_id, PROGRESS_FILE))


class Reconciler:
    """Calls ``jobs.reconcile`` every ``RECONCILE_SECONDS`` in a background thread, once Ray is
    up (an API that never launched a job and has none running never starts Ray)."""

    def __init__(self, jobs: Jobs, interval: float = RECONCILE_SECONDS) -> None:
        self.jobs, self.interval = jobs, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="reconcile", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self._has_running():
                    from pipelines.runtime import ensure_ray

                    ensure_ray(log_to_driver=False)
                    self.jobs.reconcile()
            except Exception:  # the loop must outlive one bad pass; the pass is logged
                log.exception("reconcile pass failed")
            self._stop.wait(self.interval)

    def _has_running(self) -> bool:
        return bool(self.jobs.store.query("SELECT 1 FROM jobs WHERE status = ? LIMIT 1", [RUNNING]))


def wait_for(jobs: Jobs, job_id: str, timeout: float = 600.0, poll: float = 0.5) -> dict[str, Any]:
    """Reconcile until the job is no longer running; returns its record (for the CLI and tests)."""
    deadline = time.monotonic() + timeout
    while True:
        jobs.reconcile()
        record = jobs.get(job_id)
        if record is None or record["status"] != RUNNING:
            return record
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still running after {timeout:.0f}s")
        time.sleep(poll)
