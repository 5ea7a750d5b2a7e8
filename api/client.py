"""A small HTTP client of the REST API (``api.app``), for ``midtrain --server URL`` and scripts.

One method per endpoint, returning the decoded JSON. A problem response (RFC 7807) raises
``ClientError``, whose ``str`` is one line: ``HTTP 422: field config.sources.0.path: ...``.
Transport failures (connection refused, timeouts) are ``httpx.TransportError`` as httpx raises
them; ``api.cli`` reports them on one line.

    client = Client("http://host:8000", token=os.environ.get("MIDTRAIN_API_TOKEN"))
    job = client.launch_curation(config)
    record = client.wait("curation", job["id"], on_line=print)
"""

from __future__ import annotations

import time
from typing import Any, Callable
from urllib.parse import quote

import httpx

# The URL prefix of each kind of job (api/routes/runs.py).
RUN_PREFIXES: dict[str, str] = {"curation": "/curation-runs", "mix-build": "/mix-builds", "training": "/training-runs"}
# api.jobs.Jobs.launch names a job "<first five letters of its kind, no dash>-<12 hex digits>".
_ID_KINDS = {kind.replace("-", "")[:5]: kind for kind in RUN_PREFIXES}
RUNNING = "running"


class ClientError(Exception):
    """A problem response: ``status``, ``detail`` and the ``field`` it names, if any."""

    def __init__(self, status: int, detail: str, field: str | None = None, problem: dict | None = None) -> None:
        self.status, self.detail, self.field = status, detail, field
        self.problem = problem or {}
        super().__init__(f"HTTP {status}: {' '.join(detail.split())}")


def kind_of(job_id: str) -> str | None:
    """The kind of job an id names, from its prefix; None when the prefix is not a kind's."""
    return _ID_KINDS.get(job_id.split("-", 1)[0])


def _segment(value: str) -> str:
    return quote(value, safe="")


class Client:
    """The API at ``base_url``, with ``Authorization: Bearer <token>`` when a token is given.
    ``transport`` replaces httpx's network transport (``httpx.MockTransport`` in a test);
    ``session`` replaces the whole ``httpx.Client`` (``fastapi.testclient.TestClient(app)``
    is one, for an in-process app)."""

    def __init__(self, base_url: str, token: str | None = None, transport: httpx.BaseTransport | None = None,
                 session: httpx.Client | None = None, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.session = session or httpx.Client(base_url=self.base_url, transport=transport, timeout=timeout)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------------

    def request(self, method: str, path: str, params: dict[str, Any] | None = None,
                json: Any = None) -> httpx.Response:
        """One request; a 4xx/5xx answer raises ``ClientError``."""
        params = {key: value for key, value in (params or {}).items() if value is not None}
        response = self.session.request(method, self.base_url + path, params=params or None, json=json,
                                        headers=self.headers)
        if response.status_code >= 400:
            raise _client_error(response)
        return response

    def _json(self, method: str, path: str, params: dict[str, Any] | None = None, json: Any = None) -> Any:
        return self.request(method, path, params, json).json()

    # -- health ---------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self._json("GET", "/health")

    # -- sources --------------------------------------------------------------------------------

    def register_source(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/sources", json=spec)

    def list_sources(self, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        return self._json("GET", "/sources", {"limit": limit, "offset": offset})

    def get_source(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"/sources/{_segment(name)}")

    def delete_source(self, name: str) -> None:
        self.request("DELETE", f"/sources/{_segment(name)}")

    # -- corpora --------------------------------------------------------------------------------

    def corpus(self, run_id: str) -> dict[str, Any]:
        return self._json("GET", f"/corpora/{_segment(run_id)}")

    def corpus_documents(self, run_id: str, domain: str | None = None, tag: str | None = None, limit: int = 20,
                         offset: int = 0, max_chars: int = 2000) -> dict[str, Any]:
        return self._json("GET", f"/corpora/{_segment(run_id)}/documents",
                          {"domain": domain, "tag": tag, "limit": limit, "offset": offset, "max_chars": max_chars})

    # -- mixtures -------------------------------------------------------------------------------

    def save_mixture(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/mixtures", json=spec)

    def validate_mixture(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/mixtures/validate", json=spec)

    def list_mixtures(self, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        return self._json("GET", "/mixtures", {"limit": limit, "offset": offset})

    def get_mixture(self, name: str, version: int | None = None) -> dict[str, Any]:
        """The latest version, or ``version``."""
        path = f"/mixtures/{_segment(name)}" + (f"/versions/{int(version)}" if version is not None else "")
        return self._json("GET", path)

    def mixture_versions(self, name: str, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        return self._json("GET", f"/mixtures/{_segment(name)}/versions", {"limit": limit, "offset": offset})

    def mixture_plan(self, name: str, version: int | None = None) -> dict[str, Any]:
        return self._json("GET", f"/mixtures/{_segment(name)}/plan", {"version": version})

    def mixture_preview(self, name: str, phase: str | None = None, sequences: int = 4, version: int | None = None,
                        max_chars: int = 2000) -> dict[str, Any]:
        return self._json("GET", f"/mixtures/{_segment(name)}/preview",
                          {"phase": phase, "sequences": sequences, "version": version, "max_chars": max_chars})

    # -- jobs -----------------------------------------------------------------------------------

    def launch_curation(self, config: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/curation-runs", json={"config": config})

    def launch_mix_build(self, mixture: str, version: int | None = None, output: str | None = None) -> dict[str, Any]:
        return self._json("POST", "/mix-builds", json={"mixture": mixture, "version": version, "output": output})

    def launch_training(self, spec: dict[str, Any], mix_build: str | None = None) -> dict[str, Any]:
        return self._json("POST", "/training-runs", json={"spec": spec, "mix_build": mix_build})

    def list_runs(self, kind: str, status: str | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        return self._json("GET", _prefix(kind), {"status": status, "limit": limit, "offset": offset})

    def list_all_runs(self, kind: str | None = None, status: str | None = None, limit: int = 50,
                      offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Jobs of ``kind``, or of every kind, newest first; and how many there are."""
        page = self._json("GET", "/runs", {"kind": kind, "status": status, "limit": limit, "offset": offset})
        return page["items"], page["total"]

    def get_run(self, job_id: str, kind: str | None = None) -> dict[str, Any]:
        """One job; its kind from its id when not given."""
        return self._json("GET", self._job_path(job_id, kind))

    def run_logs(self, job_id: str, offset: int = 0, limit: int = 1000, kind: str | None = None) -> dict[str, Any]:
        return self._json("GET", self._job_path(job_id, kind) + "/logs", {"offset": offset, "limit": limit})

    def cancel_run(self, job_id: str, kind: str | None = None) -> dict[str, Any]:
        return self._json("POST", self._job_path(job_id, kind) + "/cancel")

    def artefacts(self, job_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        return self._json("GET", self._job_path(job_id, kind) + "/artefacts")

    def artefact(self, job_id: str, path: str, kind: str | None = None) -> bytes:
        quoted = "/".join(_segment(part) for part in path.split("/"))
        return self.request("GET", self._job_path(job_id, kind) + f"/artefacts/{quoted}").content

    def mix_build_report(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/mix-builds/{_segment(job_id)}/report")

    def training_metrics(self, job_id: str, file: str = "metrics", offset: int = 0,
                         limit: int = 1000) -> dict[str, Any]:
        return self._json("GET", f"/training-runs/{_segment(job_id)}/metrics",
                          {"file": file, "offset": offset, "limit": limit})

    def wait(self, job_id: str, kind: str | None = None, on_line: Callable[[str], None] | None = None,
             poll: float = 0.5, timeout: float | None = None) -> dict[str, Any]:
        """Poll a job until it is no longer running, handing each new log line to ``on_line``
        as it arrives; returns the final record. ``TimeoutError`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        offset = 0
        while True:
            record = self.get_run(job_id, kind)  # before the logs: a finished job's log is complete
            while True:
                page = self.run_logs(job_id, offset, kind=kind)
                for line in page["lines"]:
                    if on_line is not None:
                        on_line(line)
                if page["next_offset"] == offset:
                    break
                offset = page["next_offset"]
            if record["status"] != RUNNING:
                return record
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still running after {timeout:.0f}s")
            time.sleep(poll)

    def _job_path(self, job_id: str, kind: str | None) -> str:
        kind = kind or kind_of(job_id)
        if kind is None:
            raise ClientError(404, f"no job {job_id!r}: a job id starts with curat-, mixbu- or train-")
        return f"{_prefix(kind)}/{_segment(job_id)}"


def _prefix(kind: str) -> str:
    try:
        return RUN_PREFIXES[kind]
    except KeyError:
        raise ValueError(f"unknown job kind {kind!r}; known: {', '.join(RUN_PREFIXES)}") from None


def _client_error(response: httpx.Response) -> ClientError:
    """The problem in ``response`` as a ``ClientError``; a body that is no problem (a proxy's
    HTML page) is summarised by its status phrase."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return ClientError(response.status_code, body["detail"], body.get("field"), body)
    return ClientError(response.status_code, response.reason_phrase or "error")


__all__ = ["Client", "ClientError", "RUN_PREFIXES", "kind_of"]
