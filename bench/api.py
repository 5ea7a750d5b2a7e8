"""REST API latency under concurrent clients, against a real ``midtrain serve`` process, while a
curation run launched through the API is going on.

Set-up, in a scratch folder that is the server's only data root:

- a **corpus of ``--documents`` documents** (default 100,000; web, code and math in equal
  parts, 20-60 words each) written directly as contract-1 shards
  (``shards/domain=<d>/part-0.parquet``, ``corpus.schema.SHARD_SCHEMA``): all the mixture
  planner reads (``mixer.plan.plan_mixture`` selects from the shards with DuckDB and tokenises
  every selected text; no manifest, catalog file or report is needed), so nothing is curated;
  and a byte-level BPE (``mixer.tokenizer.train_tokenizer``) trained on 2,000 of its documents;
- a mixture over it (``big``: one 1 M-token phase at 512, a source per domain) and ``--mixtures``
  small ones, saved through ``POST /mixtures``;
- ``--curation-documents`` seeded web pages (``bench/curate.py``'s generator) that a curation
  run curates, launched through ``POST /curation-runs`` before the clock starts and launched
  again (a new output) whenever it finishes while a group is being measured. As in
  docker-compose.yml, a Ray head runs as its own process (``ray start --head``, every core)
  and the server is a driver of it through ``RAY_ADDRESS``; all of it shares the same 2 cores.
  The server gets the flags docker-compose.yml's ``api`` service gives ``midtrain serve``
  (``--no-access-log``); ``--access-log`` measures it with uvicorn's access log on.
  (Without ``RAY_ADDRESS`` the server would start Ray from the request thread of the first
  launch, and Ray's head processes die with that thread: see the report of this bench.)

Measured (each request's wall time at the client, one keep-alive HTTP/1.1 connection per
client written on asyncio streams, the bearer token on; see ``Connection`` for why not httpx):

- **reads**: ``--clients`` (50) concurrent clients for ``--seconds``, each cycling through
  ``GET /mixtures``, ``GET /mixtures/{name}``, ``GET /curation-runs`` and
  ``GET /curation-runs/{id}`` (the running curation job). Target: p99 < 100 ms.
- **plan**: ``--clients`` concurrent clients for ``--plan-seconds``, each sending
  ``GET /mixtures/big/plan`` again as soon as the last one answers (a request started before
  the end is waited for, up to ``--timeout``). Target: p99 < 1 s.
- **plan_single**: one client, ``--plan-single`` plans in a row, before the concurrent run: what
  one plan costs when nothing else is asked of the server (no target).

Percentiles are over the requests answered 200; everything else (another status, a timeout, a
transport error) is counted in ``errors`` and fails the group. ``curation`` lists the runs and
the share of each group's window during which one was running.

    .venv/bin/python bench/api.py [--documents 100000] [--clients 50] [--seconds 20]
        [--plan-seconds 30] [--output bench/results]

Writes ``bench/results/api.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import httpx  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from bench.results import write_result  # noqa: E402
from corpus.schema import SHARD_SCHEMA  # noqa: E402

TOKEN = "bench-api-token"
TARGETS_MS = {"reads": 100.0, "plan": 1000.0}
DOMAINS = ("web", "code", "math")
WORDS = (
    "river field bridge market library storm quarry summer children garden council teacher farmer museum "
    "student village harbour mountain forest winter letter window kitchen total count items value result"
).split()
BIN = Path(sys.executable).parent


@dataclass
class Settings:
    documents: int = 100_000
    clients: int = 50
    seconds: float = 20.0
    plan_seconds: float = 30.0
    plan_single: int = 3
    timeout: float = 600.0
    mixtures: int = 20
    curation_documents: int = 20_000
    curation_files: int = 4
    workdir: Path | None = None  # a scratch folder, removed after, when None
    access_log: bool | None = None  # None: as docker-compose.yml's api service runs the server


# ---------------------------------------------------------------------------------------------
# Data


def write_corpus(out: Path, documents: int, seed: int = 0) -> dict[str, Any]:
    """``documents`` contract-1 rows over the domains, one shard each; returns counts and bytes."""
    rng = random.Random(seed)
    written: dict[str, int] = {}
    for number, domain in enumerate(DOMAINS):
        ids, texts = [], []
        for index in range(number, documents, len(DOMAINS)):
            ids.append(f"{domain}-{index:07d}")
            texts.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60))) + ".")
        count = len(ids)
        table = pa.table({
            "id": ids, "text": texts, "source": [f"{domain}-source"] * count, "domain": [domain] * count,
            "lang": ["en"] * count, "lang_score": [0.99] * count,
            "quality": [round(rng.random(), 3) for _ in range(count)],
            "scores": [[("quality", 0.5)]] * count, "tags": [[] for _ in range(count)],
            "n_chars": [len(text) for text in texts], "n_tokens": [len(text.split()) for text in texts],
            "dup_cluster": [None] * count, "meta": ["{}"] * count,
        }, schema=SHARD_SCHEMA)
        directory = out / "shards" / f"domain={domain}"
        directory.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, directory / "part-0.parquet", compression="zstd")
        written[domain] = count
    size = sum(path.stat().st_size for path in (out / "shards").rglob("*.parquet"))
    return {"documents": sum(written.values()), "per_domain": written, "shard_bytes": size}


def big_mixture(tokens: int = 1_000_000) -> dict[str, Any]:
    return {"name": "big", "corpus": ["corpus"], "tokenizer": "tokenizer.json", "seed": 1,
            "phases": [{"name": "main", "tokens": tokens, "seq_len": 512,
                        "sources": [{"name": domain, "select": {"domain": domain}, "weight": 1.0}
                                    for domain in DOMAINS]}]}


def small_mixture(number: int) -> dict[str, Any]:
    spec = big_mixture(64 * 512)
    spec["name"] = f"small-{number:03d}"
    spec["seed"] = number
    return spec


def curation_config(output: str) -> dict[str, Any]:
    return {"output": output,
            "sources": [{"name": "web", "path": "pages/*.jsonl", "format": "jsonl", "kind": "web",
                         "id_field": "id"}]}


# ---------------------------------------------------------------------------------------------
# The server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_group(process: subprocess.Popen) -> None:
    """End a process started in its own session, and whatever of its group outlives it."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class RayHead:
    """``ray start --head`` as its own process, as docker-compose runs it: the server is a
    driver of it through RAY_ADDRESS, and the jobs it launches run on it."""

    def __init__(self, cpus: int) -> None:
        self.temp = Path(tempfile.mkdtemp(prefix="mtb-", dir="/tmp"))  # short: Ray's socket paths
        self.address = f"127.0.0.1:{free_port()}"
        token = self.temp / "auth_token"
        token.write_text(secrets.token_hex(32))
        # Ray's token authentication on, as in docker-compose.yml; the server reads the same token.
        self.env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
        env = {**{key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}, **self.env}
        self.process = subprocess.Popen(
            [str(BIN / "ray"), "start", "--head", "--block", f"--port={self.address.split(':')[1]}",
             f"--num-cpus={cpus}", "--include-dashboard=false", f"--temp-dir={self.temp}"],
            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = subprocess.run([str(BIN / "ray"), "status", f"--address={self.address}"], env=env,
                                    capture_output=True)
            if status.returncode == 0:
                return
            if self.process.poll() is not None:
                break
            time.sleep(1)
        self.stop()
        raise RuntimeError("the Ray head did not start within 120 s")

    def stop(self) -> None:
        stop_group(self.process)
        shutil.rmtree(self.temp, ignore_errors=True)


def compose_serve_flags() -> list[str]:
    """The flags docker-compose.yml's ``api`` service gives ``midtrain serve``, but where it
    listens: the bench runs the server as the deployment does."""
    import yaml

    command = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["api"]["command"]
    if command[:2] != ["midtrain", "serve"]:
        raise RuntimeError(f"docker-compose.yml: the api service runs {command!r}, not midtrain serve")
    flags, arguments = [], iter(command[2:])
    for flag in arguments:
        if flag in ("--host", "--port"):
            next(arguments)
        else:
            flags.append(flag)
    return flags


def serve_flags(access_log: bool | None) -> list[str]:
    flags = [flag for flag in compose_serve_flags() if access_log is None or "access-log" not in flag]
    return flags if access_log is None else [*flags, "--access-log" if access_log else "--no-access-log"]


class Server:
    """``midtrain serve`` in its own process group, a driver of ``head``, output to a log."""

    def __init__(self, root: Path, head: RayHead, flags: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "server.log"
        env = {**os.environ, "MIDTRAIN_API_TOKEN": TOKEN, "MIDTRAIN_DATA_ROOTS": str(root),
               "MIDTRAIN_STATE": str(root / "state.duckdb"), "MIDTRAIN_RUNS": str(root / "runs"),
               "RAY_ADDRESS": head.address, **head.env}
        with self.log.open("w") as handle:
            self.process = subprocess.Popen([str(BIN / "midtrain"), "serve", *flags, "--port", str(self.port)],
                                            cwd=root, env=env, start_new_session=True, stdout=handle,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"midtrain serve exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError("midtrain serve did not answer /health within 120 s")

    def stop(self) -> None:
        stop_group(self.process)


# ---------------------------------------------------------------------------------------------
# Measuring


@dataclass
class Sample:
    endpoint: str
    seconds: float
    status: int | None  # None: no answer (timeout, transport error)
    error: str | None = None


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (the smallest value with at least q% of values at or below it)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def summarise(samples: list[Sample], seconds: float) -> dict[str, Any]:
    ok = [sample.seconds * 1000 for sample in samples if sample.status == 200]
    errors: dict[str, int] = {}
    for sample in samples:
        if sample.status != 200:
            kind = sample.error or str(sample.status)
            errors[kind] = errors.get(kind, 0) + 1

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value, 2)

    return {"count": len(samples), "errors": sum(errors.values()), "error_kinds": errors,
            "p50_ms": ms(percentile(ok, 50)), "p99_ms": ms(percentile(ok, 99)), "max_ms": ms(max(ok, default=None)),
            "mean_ms": ms(sum(ok) / len(ok) if ok else None), "seconds": round(seconds, 2),
            "requests_per_second": round(len(samples) / seconds, 2) if seconds else None}


def say(line: str) -> None:
    print(f"bench {time.strftime('%H:%M:%S')}: {line}", file=sys.stderr, flush=True)


def wall(stamp: str | None) -> float | None:
    """A record's UTC ISO time (``...Z``) as a Unix time, comparable with ``time.time()``."""
    if not stamp:
        return None
    from datetime import datetime, timezone

    return datetime.fromisoformat(stamp.removesuffix("Z")).replace(tzinfo=timezone.utc).timestamp()


@dataclass
class Curation:
    """Keeps a curation run going through the API while groups are measured. Times are the
    server's own (a record's created_at and finished_at), so a slow answer does not stretch them."""

    client: httpx.AsyncClient
    runs: list[dict[str, Any]] = field(default_factory=list)
    current: str | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def launch(self) -> None:
        output = f"curated-{len(self.runs):02d}"
        response = await self.client.post("/curation-runs", json={"config": curation_config(output)})
        if response.status_code != 202:
            raise RuntimeError(f"POST /curation-runs: {response.status_code} {response.text}")
        record = response.json()
        self.current = record["id"]
        self.runs.append({"id": self.current, "output": output, "started": wall(record["created_at"]),
                          "ended": None, "status": "running"})

    async def started(self, seconds: float = 180.0) -> None:
        """Wait until the current run's actor reports progress."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            record = (await self.client.get(f"/curation-runs/{self.current}")).json()
            if record["status"] != "running":
                raise RuntimeError(f"curation run {self.current} is {record['status']}: {record.get('error')}")
            if (record.get("progress") or {}).get("stage"):
                return
            await asyncio.sleep(0.5)
        raise RuntimeError(f"curation run {self.current} showed no progress within {seconds:.0f} s")

    async def keep_going(self) -> None:
        while not self._stop.is_set():
            run = self.runs[-1]
            try:
                record = (await self.client.get(f"/curation-runs/{run['id']}")).json()
            except httpx.HTTPError:
                record = {"status": "running"}  # the server is busy: ask again
            if record["status"] != "running":
                run.update(ended=wall(record["finished_at"]), status=record["status"], error=record.get("error"),
                           documents=(record.get("result") or {}).get("counts", {}).get("input"))
                await self.launch()
            try:
                await asyncio.wait_for(self._stop.wait(), 0.5)
            except asyncio.TimeoutError:
                pass

    async def stop(self) -> None:
        self._stop.set()
        run = self.runs[-1]
        if run["ended"] is None:
            response = await self.client.post(f"/curation-runs/{run['id']}/cancel")
            record = response.json() if response.status_code == 200 else \
                (await self.client.get(f"/curation-runs/{run['id']}")).json()
            run.update(ended=wall(record["finished_at"]) or time.time(), status=record["status"],
                       error=record.get("error"))

    def running_share(self, start: float, end: float) -> float:
        """The share of [start, end] (Unix times) during which a run was going on."""
        covered = sum(max(0.0, min(end, run["ended"] or end) - max(start, run["started"])) for run in self.runs)
        return round(min(1.0, covered / (end - start)), 3) if end > start else 0.0


class Connection:
    """One keep-alive HTTP/1.1 connection sending GETs with the bearer token, as wrk does: what
    it costs the client is a few reads and writes. httpx's AsyncClient cost about 2 ms of CPU a
    request here, on the cores the server runs on, so 50 of them measured themselves: 400
    answers a second against the server's 4,000, and a median that was all queueing."""

    def __init__(self, url: str, timeout: float) -> None:
        address = url.removeprefix("http://")
        self.host, _, port = address.partition(":")
        self.port, self.timeout = int(port or 80), timeout
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str) -> int:
        """The response's status (its body read and dropped)."""
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        if "content-length" not in headers:  # uvicorn sends a length with every JSON body
            raise ConnectionError(f"a response to {path} without Content-Length")
        await reader.readexactly(int(headers["content-length"]))
        if headers.get("connection") == "close":
            await self.close()
        return int(lines[0].split()[1])

    async def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def timed(connection: Connection, endpoint: str, path: str) -> Sample:
    started = time.perf_counter()
    try:
        status = await asyncio.wait_for(connection.get(path), connection.timeout)
        return Sample(endpoint, time.perf_counter() - started, status)
    except asyncio.TimeoutError:
        await connection.close()  # the answer may still come: on a new connection from here
        return Sample(endpoint, time.perf_counter() - started, None, "timeout")
    except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as error:
        await connection.close()
        return Sample(endpoint, time.perf_counter() - started, None, type(error).__name__)


async def load(url: str, clients: int, seconds: float, timeout: float, requests,
               at_most: int | None = None) -> tuple[list[Sample], float, float]:
    """``clients`` coroutines, each with its own connection, sending ``requests(client, n)``'s
    (endpoint, path) one after another until ``seconds`` have passed (at least one each, at
    most ``at_most``); returns every sample and the window (Unix start and end, the end when the
    last answer came)."""
    samples: list[Sample] = []
    deadline = time.monotonic() + seconds

    async def client(number: int) -> None:
        connection = Connection(url, timeout)
        sent = 0
        try:
            while (sent == 0 or time.monotonic() < deadline) and (at_most is None or sent < at_most):
                endpoint, path = requests(number, sent)
                samples.append(await timed(connection, endpoint, path))
                sent += 1
        finally:
            await connection.close()

    start = time.time()
    await asyncio.gather(*(client(number) for number in range(clients)))
    return samples, start, time.time()


def group(samples: list[Sample], start: float, end: float, target_ms: float | None,
          curation: Curation | None) -> dict[str, Any]:
    result = summarise(samples, end - start)
    endpoints = sorted({sample.endpoint for sample in samples})
    if len(endpoints) > 1:
        result["endpoints"] = {endpoint: summarise([s for s in samples if s.endpoint == endpoint], end - start)
                               for endpoint in endpoints}
    if target_ms is not None:
        result["target_p99_ms"] = target_ms
        result["pass"] = bool(result["count"] and result["errors"] == 0 and result["p99_ms"] is not None
                              and result["p99_ms"] < target_ms)
    if curation is not None:
        result["curation_running_share"] = curation.running_share(start, end)
    return result


async def measure(url: str, settings: Settings, mixture_names: list[str]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=settings.timeout) as control:
        curation = Curation(control)
        await curation.launch()
        await curation.started()  # the first launch starts the server's Ray: not what is measured
        keeper = asyncio.create_task(curation.keep_going())
        try:
            groups: dict[str, Any] = {}

            def reads(number: int, sent: int) -> tuple[str, str]:
                choice = (number + sent) % 4
                if choice == 0:
                    return "GET /mixtures", "/mixtures"
                if choice == 1:
                    return "GET /mixtures/{name}", f"/mixtures/{mixture_names[(number + sent) % len(mixture_names)]}"
                if choice == 2:
                    return "GET /curation-runs", "/curation-runs"
                return "GET /curation-runs/{id}", f"/curation-runs/{curation.current}"

            await load(url, min(settings.clients, 4), 1.0, settings.timeout, reads)  # warm-up, not counted
            say(f"reads: {settings.clients} clients for {settings.seconds:.0f} s")
            samples, start, end = await load(url, settings.clients, settings.seconds, settings.timeout, reads)
            groups["reads"] = group(samples, start, end, TARGETS_MS["reads"], curation)

            def plan(number: int, sent: int) -> tuple[str, str]:
                return "GET /mixtures/{name}/plan", "/mixtures/big/plan"

            say(f"plan_single: {settings.plan_single} plans, one at a time")
            samples, start, end = await load(url, 1, float("inf"), settings.timeout, plan, at_most=settings.plan_single)
            groups["plan_single"] = group(samples, start, end, None, curation)
            say(f"plan: {settings.clients} clients for {settings.plan_seconds:.0f} s (and their last answers)")
            samples, start, end = await load(url, settings.clients, settings.plan_seconds, settings.timeout, plan)
            groups["plan"] = group(samples, start, end, TARGETS_MS["plan"], curation)
        finally:
            await curation.stop()
            keeper.cancel()
        started = curation.runs[0]["started"]
        runs = [{"id": run["id"], "status": run["status"], "documents": run.get("documents"),
                 "error": run.get("error"), "started_s": round(run["started"] - started, 2),
                 "seconds": round((run["ended"] or time.time()) - run["started"], 2)} for run in curation.runs]
    return {"groups": groups, "curation": {"runs": runs, "documents_per_run": settings.curation_documents}}


def run_bench(settings: Settings) -> dict[str, Any]:
    """Set up, start the server, measure, stop; the result as ``bench/results/api.json`` has it."""
    from bench.curate import make_corpus
    from mixer.tokenizer import train_tokenizer

    scratch = settings.workdir is None
    root = Path(tempfile.mkdtemp(prefix="midtrain-bench-api-")) if scratch else Path(settings.workdir)
    root.mkdir(parents=True, exist_ok=True)
    server = head = None
    load_before = [round(value, 2) for value in os.getloadavg()]
    try:
        started = time.perf_counter()
        corpus = write_corpus(root / "corpus", settings.documents)
        corpus["write_seconds"] = round(time.perf_counter() - started, 2)
        train_tokenizer([str(root / "corpus")], str(root / "tokenizer.json"), vocab_size=1024, sample_docs=2000)
        make_corpus(root / "pages", settings.curation_documents, settings.curation_files)

        head = RayHead(os.cpu_count() or 2)
        flags = serve_flags(settings.access_log)
        server = Server(root, head, flags)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        names = ["big"]
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
            for spec in [big_mixture(), *(small_mixture(number) for number in range(settings.mixtures))]:
                response = http.post("/mixtures", json=spec)
                if response.status_code != 201:
                    raise RuntimeError(f"POST /mixtures {spec['name']}: {response.status_code} {response.text}")
                names.append(spec["name"])
        measured = asyncio.run(measure(server.url, settings, names))
    finally:
        if server is not None:
            server.stop()
        if head is not None:
            head.stop()
        if scratch:
            shutil.rmtree(root, ignore_errors=True)
    groups = measured["groups"]
    return {
        "bench": "api",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_before": load_before, "load_average_after": [round(v, 2) for v in os.getloadavg()]},
        "settings": {key: (str(value) if isinstance(value, Path) else value) for key, value in asdict(settings).items()},
        "server": {"command": ["midtrain", "serve", *flags]},
        "corpus": corpus,
        "groups": groups,
        "curation": measured["curation"],
        "targets": {"reads_p99_ms": TARGETS_MS["reads"], "plan_p99_ms": TARGETS_MS["plan"],
                    "reads_pass": groups["reads"]["pass"], "plan_pass": groups["plan"]["pass"]},
    }


def table(result: dict[str, Any]) -> str:
    rows = [("group", "endpoint", "count", "errors", "p50 ms", "p99 ms", "max ms", "target p99", "pass")]

    def cell(value: Any) -> str:
        return "-" if value is None else f"{value:,.1f}" if isinstance(value, float) else str(value)

    for name, summary in result["groups"].items():
        target = summary.get("target_p99_ms")
        verdict = "-" if "pass" not in summary else "PASS" if summary["pass"] else "FAIL"
        rows.append((name, "(all)", cell(summary["count"]), cell(summary["errors"]), cell(summary["p50_ms"]),
                     cell(summary["p99_ms"]), cell(summary["max_ms"]), f"< {target:,.0f} ms" if target else "-",
                     verdict))
        for endpoint, part in summary.get("endpoints", {}).items():
            rows.append(("", endpoint, cell(part["count"]), cell(part["errors"]), cell(part["p50_ms"]),
                         cell(part["p99_ms"]), cell(part["max_ms"]), "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(value.ljust(width) if i < 2 else value.rjust(width) for i, (value, width)
                       in enumerate(zip(row, widths))).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    runs = result["curation"]["runs"]
    shares = ", ".join(f"{name} {summary.get('curation_running_share', 0):.0%}"
                       for name, summary in result["groups"].items())
    lines.append(f"curation runs: {len(runs)} ({', '.join(run['status'] for run in runs)}); "
                 f"a run was going on during: {shares}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    defaults = Settings()
    parser.add_argument("--documents", type=int, default=defaults.documents)
    parser.add_argument("--clients", type=int, default=defaults.clients)
    parser.add_argument("--seconds", type=float, default=defaults.seconds, help="the reads group's duration")
    parser.add_argument("--plan-seconds", type=float, default=defaults.plan_seconds)
    parser.add_argument("--plan-single", type=int, default=defaults.plan_single)
    parser.add_argument("--timeout", type=float, default=defaults.timeout, help="per request")
    parser.add_argument("--mixtures", type=int, default=defaults.mixtures, help="small mixtures besides big")
    parser.add_argument("--curation-documents", type=int, default=defaults.curation_documents)
    parser.add_argument("--workdir", type=Path, help="keep the data, state and server log here")
    parser.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=None,
                        help="uvicorn's access log on or off (default: as docker-compose.yml runs the API)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    settings = Settings(documents=args.documents, clients=args.clients, seconds=args.seconds,
                        plan_seconds=args.plan_seconds, plan_single=args.plan_single, timeout=args.timeout,
                        mixtures=args.mixtures, curation_documents=args.curation_documents, workdir=args.workdir,
                        access_log=args.access_log)
    result = run_bench(settings)
    write_result(args.output, "api", result)
    print(table(result))


if __name__ == "__main__":
    main()
