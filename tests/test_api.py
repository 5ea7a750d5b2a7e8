"""The REST API through FastAPI's test client, on a temporary state file."""

from __future__ import annotations

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
    assert created.json()["version"] == 1 and len(created.json()["sha256"]) == 64
    changed = {**SPEC, "seed": 2}
    assert client.post("/mixtures", json=changed).json()["version"] == 2
    assert client.get("/mixtures/anneal").json()["spec"]["seed"] == 2
    assert client.get("/mixtures/anneal/versions/1").json()["spec"]["seed"] == 1
    client.post("/mixtures", json={**SPEC, "name": "general"})
    page = client.get("/mixtures", params={"limit": 1}).json()
    assert page["total"] == 2 and [item["name"] for item in page["items"]] == ["anneal"]
    assert client.get("/mixtures", params={"offset": 1}).json()["items"][0]["name"] == "general"


def test_missing_mixture_is_a_problem(client):
    response = client.get("/mixtures/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Not Found"


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


def test_token_is_required_when_configured(state, monkeypatch):
    monkeypatch.setenv("MIDTRAIN_API_TOKEN", "s3cret")
    with TestClient(create_app(state)) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/mixtures").status_code == 401
        assert client.get("/mixtures", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/mixtures", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_oversized_body_is_refused(state, monkeypatch):
    monkeypatch.delenv("MIDTRAIN_API_TOKEN", raising=False)
    with TestClient(create_app(state, max_body_bytes=1000)) as client:
        response = client.post("/mixtures", json={**SPEC, "padding": "x" * 2000})
        assert response.status_code == 413


def test_state_survives_a_restart(state, monkeypatch):
    monkeypatch.delenv("MIDTRAIN_API_TOKEN", raising=False)
    with TestClient(create_app(state)) as client:
        client.post("/mixtures", json=SPEC)
    with TestClient(create_app(state)) as client:
        assert client.get("/mixtures/anneal").json()["version"] == 1


def test_openapi_lists_the_endpoints(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/mixtures", "/mixtures/{name}", "/mixtures/{name}/versions/{version}"} <= set(paths)
    assert client.get("/docs").status_code == 200
