"""Abuse of the API (issue 8): every protected operation refuses a missing or wrong token, a
body over the limit is refused also when it comes without a length, and 200 clients reading
and writing for a minute while curation runs go on get no error and lose no record.

Path traversal and symlink escapes are tested where the confinement lives
(tests/test_api_paths.py, tests/test_api_sources.py); generated requests over the whole schema
in tests/test_api_schema.py.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from api_server import Server
from fastapi.testclient import TestClient

from api.app import create_app
from api.paths import DataRoots

TOKEN = "abuse-test-token"
CLIENTS = 200
LOAD_SECONDS = 60.0
WORDS = ("river stone garden window letter market winter music paper bridge morning "
         "number story season harbour village").split()


def with_token(monkeypatch, **kwargs):
    monkeypatch.setenv("MIDTRAIN_API_TOKEN", TOKEN)  # create_app reads it once
    return create_app(**kwargs)


def concrete(path: str) -> str:
    """An OpenAPI path with its parameters filled in (what they are does not matter: the token
    is checked before anything is looked up)."""
    return re.sub(r"{(\w+)(:path)?}", lambda match: "1" if match.group(1) == "version" else "x", path)


def operations(app) -> list[tuple[str, str]]:
    return [(method.upper(), concrete(path)) for path, methods in app.openapi()["paths"].items()
            for method in methods]


WRONG = {
    "no header": {},
    "wrong token": {"Authorization": "Bearer not-the-token"},
    "token with a suffix": {"Authorization": f"Bearer {TOKEN}x"},
    "token prefix": {"Authorization": f"Bearer {TOKEN[:-1]}"},
    "another scheme": {"Authorization": f"Basic {TOKEN}"},
    "bare token": {"Authorization": TOKEN},
}


@pytest.mark.parametrize("headers", WRONG.values(), ids=WRONG.keys())
def test_every_operation_but_health_refuses_a_missing_or_wrong_token(tmp_path, monkeypatch, headers):
    app = with_token(monkeypatch, state_path=str(tmp_path / "state.duckdb"),
                     data_roots=DataRoots((tmp_path,)), runs_root=tmp_path / "runs")
    with TestClient(app) as client:
        checked = 0
        for method, path in operations(app):
            response = client.request(method, path, headers=headers, json={} if method == "POST" else None)
            if path == "/health":
                assert response.status_code == 200
                continue
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["www-authenticate"] == "Bearer"
            checked += 1
        assert checked >= 35  # every operation the API has (about 40), not a handful
        assert client.get("/mixtures", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_a_body_without_a_length_is_cut_off_at_the_limit(tmp_path, monkeypatch):
    """Chunked transfer (no Content-Length): the limit counts the bytes as they arrive."""
    app = with_token(monkeypatch, state_path=str(tmp_path / "state.duckdb"), max_body_bytes=4096)

    def chunks():
        for _ in range(1000):  # 1 MB in all, far over the limit
            yield b"x" * 1024

    with TestClient(app) as client:
        response = client.post("/mixtures", content=chunks(),
                               headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        assert client.get("/mixtures", headers={"Authorization": f"Bearer {TOKEN}"}).json()["total"] == 0
    assert response.status_code == 413 and response.headers["content-type"] == "application/problem+json"
    assert "4096 bytes" in response.json()["detail"]


# ---------------------------------------------------------------------------------------------
# 200 clients for a minute while curation runs go on


def mixture(name: str) -> dict:
    return {"name": name, "corpus": ["corpus"], "tokenizer": "tokenizer.json", "seed": 1,
            "phases": [{"name": "p", "tokens": 4096, "seq_len": 64,
                        "sources": [{"name": "web", "select": {"domain": "web"}, "weight": 1.0}]}]}


@pytest.fixture()
def site(tmp_path, monkeypatch):
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    (root / "corpus").mkdir()
    (root / "tokenizer.json").write_text("{}")
    rng = random.Random(3)
    with (root / "data" / "web.jsonl").open("w") as handle:
        for number in range(3000):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(60, 160)))
            handle.write(json.dumps({"id": f"d{number}", "text": f"{words.capitalize()}."}) + "\n")
    app = with_token(monkeypatch, state_path=str(tmp_path / "state.duckdb"), data_roots=DataRoots((root,)),
                     runs_root=root / "runs", reconcile_seconds=0.5)
    server = Server(app)
    yield server
    server.stop()


class Load:
    """What the clients did: acknowledged writes, and every response that was not the
    expected one (an exception counts too)."""

    def __init__(self) -> None:
        self.statuses: Counter[str] = Counter()
        self.failures: list[str] = []
        self.versions: dict[str, int] = {}
        self.sources: set[str] = set()
        self.runs: list[str] = []

    def check(self, response: httpx.Response, expected: int, what: str) -> bool:
        self.statuses[f"{what} {response.status_code}"] += 1
        if response.status_code != expected:
            self.failures.append(f"{what}: {response.status_code} {response.text[:200]}")
            return False
        return True


async def client_loop(number: int, http: httpx.AsyncClient, load: Load, deadline: float) -> None:
    rng = random.Random(number)
    name = f"load-{number}"
    while time.monotonic() < deadline:
        roll = rng.random()
        try:
            if roll < 0.15:
                response = await http.post("/mixtures", json=mixture(name))
                if load.check(response, 201, "POST /mixtures"):
                    assert response.json()["version"] == load.versions.get(name, 0) + 1
                    load.versions[name] = response.json()["version"]
            elif roll < 0.25:
                source = f"src-{number}-{len(load.sources)}"
                response = await http.post("/sources", json={"name": source, "path": "data/web.jsonl",
                                                               "format": "jsonl", "kind": "web"})
                if load.check(response, 201, "POST /sources"):
                    load.sources.add(source)
            elif roll < 0.45 and name in load.versions:
                load.check(await http.get(f"/mixtures/{name}"), 200, "GET /mixtures/{name}")
            elif roll < 0.65:
                load.check(await http.get("/mixtures", params={"limit": 20}), 200, "GET /mixtures")
            elif roll < 0.8 and load.runs:
                load.check(await http.get(f"/curation-runs/{rng.choice(load.runs)}"), 200, "GET /curation-runs/{id}")
            elif roll < 0.9:
                load.check(await http.get("/curation-runs"), 200, "GET /curation-runs")
            else:
                load.check(await http.get("/sources", params={"limit": 10}), 200, "GET /sources")
        except (httpx.HTTPError, AssertionError) as error:
            load.failures.append(f"client {number}: {type(error).__name__}: {error}")


async def keep_a_run_going(http: httpx.AsyncClient, load: Load, deadline: float) -> None:
    """Curation runs back to back for the whole minute, each to its own output."""
    while time.monotonic() < deadline:
        request = {"output": f"curated-{len(load.runs)}", "shard_rows": 500,
                   "sources": [{"name": "web", "path": "data/web.jsonl", "format": "jsonl", "kind": "web",
                                "id_field": "id"}]}
        response = await http.post("/curation-runs", json={"config": request})
        if not load.check(response, 202, "POST /curation-runs"):
            return
        load.runs.append(response.json()["id"])
        while time.monotonic() < deadline + 120:  # the last one may finish after the minute
            record = (await http.get(f"/curation-runs/{load.runs[-1]}")).json()
            if record["status"] != "running":
                break
            await asyncio.sleep(0.5)


async def drive(url: str) -> Load:
    load = Load()
    deadline = time.monotonic() + LOAD_SECONDS
    limits = httpx.Limits(max_connections=CLIENTS + 1, max_keepalive_connections=CLIENTS + 1)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"},
                                 limits=limits, timeout=60.0) as http:
        await asyncio.gather(keep_a_run_going(http, load, deadline),
                             *(client_loop(number, http, load, deadline) for number in range(CLIENTS)))
    return load


def every_item(http: httpx.Client, path: str) -> list[dict]:
    """All of a list endpoint's items, page by page."""
    items: list[dict] = []
    while True:
        page = http.get(path, params={"limit": 500, "offset": len(items)}).json()
        items += page["items"]
        if len(items) >= page["total"] or not page["items"]:
            return items


def test_200_clients_for_a_minute_during_curation_lose_nothing(ray_runtime, site):
    load = asyncio.run(drive(site.url))
    assert not load.failures, f"{len(load.failures)} failures, first: {load.failures[:5]}"
    requests = sum(load.statuses.values())
    assert requests > 1000 and load.runs, load.statuses  # the load was real
    print(f"\n{requests} requests in {LOAD_SECONDS:.0f}s by {CLIENTS} clients; {dict(load.statuses)}")

    with httpx.Client(base_url=site.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as http:
        for name, latest in load.versions.items():  # every acknowledged version, numbered 1..n
            versions = every_item(http, f"/mixtures/{name}/versions")
            assert sorted(item["version"] for item in versions) == list(range(1, latest + 1)), name
        names = [item["name"] for item in every_item(http, "/sources")]
        assert sorted(names) == sorted(load.sources)
        for job in load.runs:  # each run finished, and its record agrees with its output's manifest
            record = http.get(f"/curation-runs/{job}").json()
            assert record["status"] == "succeeded", record["error"]
            manifest = json.loads((Path(record["output"]) / "manifest.json").read_text())
            assert record["result"]["counts"] == manifest["counts"]
            assert record["progress"]["documents"] == manifest["counts"]["input"] == 3000
