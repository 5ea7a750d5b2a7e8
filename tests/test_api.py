"""The REST API through FastAPI's test client, on a temporary state file."""

from __future__ import annotations

import hashlib
import json

import pytest
from fastapi.testclient import TestClient

from api.app import create_app

SPEC = {
    "name": "anneal",
    "corpus": ["runs/demo/curated"],
    "tokenizer": "runs/demo/tokenizer.json",
    "seed": 1,
    "phases": [{"name": "p", "tokens": 1000, "seq_len": 64,
                "sources": [{"name": "web", "select": {"domain": "web"}, "weight": 1}]}],
}


@pytest.fixture()
def state(tmp_path) -> str:
    return str(tmp_path / "state.duckdb")


@pytest.fixture()
def client(state, monkeypatch):
    monkeypatch.delenv("MIDTRAIN_API_TOKEN", raising=False)
    with TestClient(create_app(state)) as test_client:
        yield test_client


def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_create_get_list_and_versions(client):
    created = client.post("/mixtures", json=SPEC)
    assert created.status_code == 201
    first = created.json()
    assert first["version"] == 1 and first["name"] == "anneal"
    # The digest is of the canonical JSON (sorted keys, compact): recomputable by a client.
    canonical = json.dumps(first["spec"], sort_keys=True, separators=(",", ":"))
    assert first["sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    changed = {**SPEC, "seed": 2}
    assert client.post("/mixtures", json=changed).json()["version"] == 2
    assert client.get("/mixtures/anneal").json()["spec"]["seed"] == 2
    assert client.get("/mixtures/anneal/versions/1").json() == first  # version 1 unchanged
    versions = client.get("/mixtures/anneal/versions").json()
    assert versions["total"] == 2 and [item["version"] for item in versions["items"]] == [1, 2]
    client.post("/mixtures", json={**SPEC, "name": "general"})
    page = client.get("/mixtures", params={"limit": 1}).json()
    assert page["total"] == 2 and [item["name"] for item in page["items"]] == ["anneal"]
    assert client.get("/mixtures", params={"offset": 1}).json()["items"][0]["name"] == "general"


def test_reads_after_writes_are_never_stale(client):
    """Mixture reads are answered from JSON the store keeps until its next write
    (api.routes.common.stored_json): every read below comes after one that was cached, and each
    write shows in it; the bytes are those FastAPI's serialisation of the response model gives."""
    reads = ["/mixtures", "/mixtures/anneal", "/mixtures/anneal/versions", "/mixtures/anneal/versions/1",
             "/mixtures/anneal/versions/2"]
    assert [client.get(path).status_code for path in reads] == [200, 404, 404, 404, 404]
    first = client.post("/mixtures", json=SPEC)
    assert [client.get(path).status_code for path in reads] == [200, 200, 200, 200, 404]
    assert client.get("/mixtures/anneal").content == first.content  # the POST's bytes, FastAPI's own
    assert client.get("/mixtures/anneal").headers["content-type"] == "application/json"
    second = client.post("/mixtures", json={**SPEC, "seed": 2})
    assert client.get("/mixtures/anneal").content == second.content
    assert client.get("/mixtures/anneal/versions/2").content == second.content
    assert client.get("/mixtures/anneal/versions/1").content == first.content
    page = client.get("/mixtures").json()
    assert page["total"] == 1 and page["items"] == [second.json()]
    assert [item["version"] for item in client.get("/mixtures/anneal/versions").json()["items"]] == [1, 2]
    client.post("/mixtures", json={**SPEC, "name": "general"})
    assert client.get("/mixtures").json()["total"] == 2
    assert client.get("/mixtures", params={"limit": 1, "offset": 1}).json()["items"][0]["name"] == "general"


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("GET", "/mixtures/nope", 404),
        ("GET", "/mixtures/nope/versions", 404),
        ("GET", "/mixtures/nope/versions/1", 404),
        ("GET", "/no-such-route", 404),
        ("DELETE", "/mixtures", 405),
    ],
)
def test_every_error_is_a_problem(client, method, path, status):
    response = client.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["type"] == "about:blank"
    assert problem["title"] and problem["detail"]


def test_query_and_path_errors_name_their_parameter(client):
    response = client.get("/mixtures", params={"limit": 0})
    assert response.status_code == 422 and response.json()["field"] == "query.limit"
    assert client.get("/mixtures/anneal/versions/zero").json()["field"] == "path.version"


def test_malformed_json_is_a_422_on_the_body(client):
    response = client.post("/mixtures", content=b'{"name": ', headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "(body)" and "invalid JSON" in response.json()["detail"]


def test_every_validation_error_is_listed(client):
    phase = {**SPEC["phases"][0], "tokens": 0, "seq_len": -1}
    problem = client.post("/mixtures", json={**SPEC, "phases": [phase]}).json()
    assert {error["field"] for error in problem["errors"]} == {"phases.0.tokens", "phases.0.seq_len"}
    assert problem["field"] == problem["errors"][0]["field"]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"phases": [{**SPEC["phases"][0], "sources": [{"name": "w", "weight": 0}]}]}, "phases.0"),
        ({"phases": [{**SPEC["phases"][0], "sources": [{"name": "w", "weight": 1,
                                                         "select": {"domain": "poetry"}}]}]},
         "phases.0.sources.0.select.domain"),
        ({"name": "bad name; DROP TABLE"}, "name"),
    ],
)
def test_validation_errors_name_the_field(client, change, field):
    response = client.post("/mixtures", json={**SPEC, **change})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == field
    assert response.json()["detail"].startswith(f"field {field}: ")
    assert client.get("/mixtures").json()["total"] == 0  # nothing was stored


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}, {"Authorization": "s3cret"}],
)
def test_token_is_required_when_configured(state, monkeypatch, headers):
    monkeypatch.setenv("MIDTRAIN_API_TOKEN", "s3cret")
    with TestClient(create_app(state)) as client:
        assert client.get("/health").status_code == 200
        for method, path in [("GET", "/mixtures"), ("GET", "/mixtures/anneal"), ("POST", "/mixtures")]:
            response = client.request(method, path, headers=headers, json=SPEC if method == "POST" else None)
            assert response.status_code == 401, (method, path)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["www-authenticate"] == "Bearer"
        good = {"Authorization": "Bearer s3cret"}
        assert client.post("/mixtures", json=SPEC, headers=good).status_code == 201
        assert client.get("/mixtures/anneal", headers=good).status_code == 200


def test_open_without_a_token_and_says_so(state, monkeypatch, caplog):
    monkeypatch.delenv("MIDTRAIN_API_TOKEN", raising=False)
    with caplog.at_level("WARNING", logger="midtrain.api"), TestClient(create_app(state)) as client:
        assert client.get("/mixtures").status_code == 200
    assert "MIDTRAIN_API_TOKEN is not set" in caplog.text


def test_oversized_body_is_refused(state, monkeypatch):
    monkeypatch.delenv("MIDTRAIN_API_TOKEN", raising=False)
    with TestClient(create_app(state, max_body_bytes=1000)) as client:
        response = client.post("/mixtures", json={**SPEC, "padding": "x" * 2000})
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"
        # A chunked upload declares no length: the bytes that arrive are counted instead.
        chunked = client.post("/mixtures", content=iter([b" " * 600, b" " * 600]),
                              headers={"content-type": "application/json"})
        assert chunked.status_code == 413 and "transfer-encoding" in chunked.request.headers
        assert client.post("/mixtures", json=SPEC).status_code == 201  # under the limit


def _through_limit(headers: list[tuple[bytes, bytes]], chunks: list[bytes], method: str = "POST",
                   max_bytes: int = 1000) -> tuple[list[dict], dict]:
    """Send one request through ``BodySizeLimit`` alone (no server): the messages sent back, and
    what the app behind it saw (its ``receive`` and the body it read), if it was called."""
    import asyncio

    from api.app import BodySizeLimit

    seen: dict = {}

    async def app(scope, receive, send):
        seen["receive"], body = receive, b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen["body"] = body
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    messages = [{"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
                for i, chunk in enumerate(chunks)]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": "/", "headers": headers}
    seen["server_receive"] = receive
    asyncio.run(BodySizeLimit(app, max_bytes)(scope, receive, send))
    return sent, seen


def test_a_request_without_a_body_skips_the_buffering():
    # No Content-Length, no Transfer-Encoding: HTTP/1.1 gives it no body; the app reads the
    # server's own receive, nothing is buffered or replayed.
    sent, seen = _through_limit([(b"host", b"x")], [b""], method="GET")
    assert sent[0]["status"] == 200 and seen["receive"] is seen["server_receive"] and seen["body"] == b""
    sent, seen = _through_limit([(b"content-length", b"0")], [b""])
    assert sent[0]["status"] == 200 and seen["receive"] is seen["server_receive"]


def test_bodies_of_unknown_or_declared_size_are_still_counted():
    over = [b"x" * 600, b"x" * 600]
    for headers in ([(b"transfer-encoding", b"chunked")],  # chunked: counted as it comes
                    [(b"content-length", b"nonsense")]):  # a malformed length: the same
        sent, seen = _through_limit(headers, over)
        assert sent[0]["status"] == 413 and "receive" not in seen, headers
        assert (b"content-type", b"application/problem+json") in sent[0]["headers"]
        assert json.loads(sent[1]["body"])["detail"] == "request bodies are limited to 1000 bytes"
    # a GET with a chunked body over the limit is refused like a POST
    sent, seen = _through_limit([(b"transfer-encoding", b"chunked")], over, method="GET")
    assert sent[0]["status"] == 413 and "receive" not in seen
    # a declared length over the limit: refused before a byte is read
    sent, seen = _through_limit([(b"content-length", b"1001")], [b"x" * 1001], method="GET")
    assert sent[0]["status"] == 413 and "receive" not in seen
    # under the limit: buffered, then replayed whole to the app
    sent, seen = _through_limit([(b"transfer-encoding", b"chunked")], [b"a" * 400, b"b" * 400])
    assert sent[0]["status"] == 200 and seen["body"] == b"a" * 400 + b"b" * 400
    assert seen["receive"] is not seen["server_receive"]


def test_body_limit_from_the_environment(state, monkeypatch):
    monkeypatch.delenv("MIDTRAIN_API_TOKEN", raising=False)
    monkeypatch.setenv("MIDTRAIN_MAX_BODY_BYTES", "100")
    with TestClient(create_app(state)) as client:
        assert client.post("/mixtures", json=SPEC).status_code == 413


def test_state_survives_a_restart(state, monkeypatch):
    monkeypatch.delenv("MIDTRAIN_API_TOKEN", raising=False)
    with TestClient(create_app(state)) as client:
        saved = client.post("/mixtures", json=SPEC).json()
    with TestClient(create_app(state)) as client:
        assert client.get("/mixtures/anneal").json() == saved
        assert client.post("/mixtures", json=SPEC).json()["version"] == 2  # numbering goes on


def test_state_path_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("MIDTRAIN_API_TOKEN", raising=False)
    monkeypatch.setenv("MIDTRAIN_STATE", str(tmp_path / "env" / "state.duckdb"))
    with TestClient(create_app()) as client:
        assert client.post("/mixtures", json=SPEC).status_code == 201
    assert (tmp_path / "env" / "state.duckdb").exists()


def test_openapi_lists_the_endpoints(client):
    document = client.get("/openapi.json").json()
    paths = document["paths"]
    assert {"/health", "/mixtures", "/mixtures/{name}", "/mixtures/{name}/versions",
            "/mixtures/{name}/versions/{version}"} <= set(paths)
    assert document["components"]["securitySchemes"] == {
        "HTTPBearer": {"type": "http", "scheme": "bearer", "description": "the value of $MIDTRAIN_API_TOKEN"}}
    assert "security" not in paths["/health"]["get"] and paths["/mixtures"]["post"]["security"]
    # every operation but /health declares the one scheme (api.deps.require_token)
    for path, operations in paths.items():
        for method, operation in operations.items():
            if path != "/health":
                assert operation["security"] == [{"HTTPBearer": []}], (method, path)
    assert client.get("/docs").status_code == 200


def test_openapi_documents_every_error_as_a_problem(client):
    document = client.get("/openapi.json").json()
    errors = [(path, status, response) for path, operations in document["paths"].items()
              for operation in operations.values()
              for status, response in operation["responses"].items() if status[0] in "45"]
    assert len(errors) > 100
    for path, status, response in errors:
        assert list(response["content"]) == ["application/problem+json"], (path, status)
        assert response["content"]["application/problem+json"]["schema"]["$ref"].endswith("/Problem")
    assert "400" in document["paths"]["/mixtures"]["post"]["responses"]


def test_an_unexpected_failure_is_a_500_problem_without_internals(state, monkeypatch):
    monkeypatch.delenv("MIDTRAIN_API_TOKEN", raising=False)
    with TestClient(create_app(state), raise_server_exceptions=False) as client:
        def broken(*_args, **_kwargs):
            raise RuntimeError("secret internals")

        monkeypatch.setattr(client.app.state.store, "list_mixtures", broken)
        response = client.get("/mixtures")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret" not in response.text


@pytest.mark.parametrize("path", ["/mixtures", "/mixtures/m/versions", "/sources", "/runs", "/curation-runs"])
def test_an_offset_past_any_store_is_a_422_on_the_offset(client, path):
    """schemathesis sent offset=2**63, which the state file cannot take: a 500 until bounded."""
    response = client.get(path, params={"offset": 2**63})
    assert response.status_code == 422 and response.json()["field"] == "query.offset", response.text
