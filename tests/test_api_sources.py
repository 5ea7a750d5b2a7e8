"""Registered sources through the REST API (api/routes/sources.py, api/sources.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.paths import DataRoots, PathError
from api.sources import UnknownSourceError, resolve_sources
from api.state import Store


@pytest.fixture()
def root(tmp_path) -> Path:
    root = tmp_path / "root"
    (root / "web").mkdir(parents=True)
    (root / "web" / "part-0.jsonl").write_text('{"id": "a", "text": "hello"}\n')
    (root / "books").mkdir()
    (root / "books" / "one.txt").write_text("a book")
    return root


@pytest.fixture()
def client(tmp_path, root, monkeypatch):
    monkeypatch.delenv("MIDTRAIN_API_TOKEN", raising=False)
    app = create_app(str(tmp_path / "state.duckdb"), data_roots=DataRoots((root,)))
    with TestClient(app) as test_client:
        yield test_client


def web(name: str = "web", path: str = "web/*.jsonl", **more) -> dict:
    return {"name": name, "path": path, "format": "jsonl", "kind": "web", "id_field": "id", **more}


def problem_of(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()


def test_register_get_list_and_delete(client, root):
    created = client.post("/sources", json=web())
    assert created.status_code == 201, created.text
    record = created.json()
    assert record["name"] == "web" and record["created_at"].endswith("Z")
    # the path is stored confined and absolute; defaults are filled in
    assert record["spec"]["path"] == str(root / "web" / "*.jsonl")
    assert record["spec"]["id_field"] == "id" and record["spec"]["text_field"] == "text"
    assert client.get("/sources/web").json() == record

    books = client.post("/sources", json={"name": "books", "path": "books", "format": "text"})
    assert books.status_code == 201, books.text  # a folder, for a text source
    client.post("/sources", json=web("another"))
    page = client.get("/sources", params={"limit": 2}).json()
    assert page["total"] == 3 and page["limit"] == 2 and page["offset"] == 0
    assert [item["name"] for item in page["items"]] == ["another", "books"]
    assert [item["name"] for item in client.get("/sources", params={"offset": 2}).json()["items"]] == ["web"]

    deleted = client.delete("/sources/web")
    assert deleted.status_code == 204 and deleted.content == b""
    problem_of(client.get("/sources/web"), 404)
    problem_of(client.delete("/sources/web"), 404)
    assert client.get("/sources").json()["total"] == 2


def test_a_taken_name_is_a_conflict(client):
    assert client.post("/sources", json=web()).status_code == 201
    problem = problem_of(client.post("/sources", json=web(path="web/part-0.jsonl")), 409)
    assert problem["field"] == "name" and "'web'" in problem["detail"]
    assert client.get("/sources/web").json()["spec"]["path"].endswith("*.jsonl")  # unchanged


@pytest.mark.parametrize("path, words", [
    ("../elsewhere/*.jsonl", "'..'"),
    ("/etc/*.conf", "outside the data roots"),
    ("web/none-*.jsonl", "matches no input file"),
    ("missing.jsonl", "matches no input file"),
    ("web", "matches no input file"),  # a folder is not a jsonl source
])
def test_a_bad_path_is_a_422_naming_the_field(client, path, words):
    problem = problem_of(client.post("/sources", json=web(path=path)), 422)
    assert problem["field"] == "path" and words in problem["detail"]
    assert client.get("/sources").json()["total"] == 0


def test_a_symlink_out_of_the_roots_is_refused(client, root, tmp_path):
    (tmp_path / "secret.jsonl").write_text('{"text": "secret"}\n')
    (root / "web" / "leak.jsonl").symlink_to(tmp_path / "secret.jsonl")
    problem = problem_of(client.post("/sources", json=web()), 422)
    assert problem["field"] == "path" and "outside the data roots" in problem["detail"]


def test_an_invalid_entry_is_a_422_naming_the_field(client):
    assert problem_of(client.post("/sources", json=web(format="csv")), 422)["field"] == "format"
    assert problem_of(client.post("/sources", json=web(name="a b")), 422)["field"] == "name"
    assert problem_of(client.post("/sources", json=web(surprise=1)), 422)["field"] == "surprise"


def test_paging_parameters_are_checked(client):
    assert problem_of(client.get("/sources", params={"limit": 0}), 422)["field"] == "query.limit"
    assert problem_of(client.get("/sources", params={"offset": -1}), 422)["field"] == "query.offset"


def test_resolve_sources_replaces_names_by_stored_entries(client):
    client.post("/sources", json=web())
    stored = client.get("/sources/web").json()["spec"]
    store: Store = client.app.state.store
    inline = web("inline", "web/part-0.jsonl")
    assert resolve_sources(store, ["web", inline]) == [stored, inline]
    with pytest.raises(UnknownSourceError) as caught:
        resolve_sources(store, [inline, "web", "nope"])
    assert isinstance(caught.value, PathError) and caught.value.field == "sources.2"
    assert str(caught.value) == "field sources.2: no registered source 'nope'"


def test_reads_after_writes_are_never_stale(client, root):
    """Reads are answered from JSON the store keeps until its next write (api.routes.common.
    stored_json): each write shows in the next read, and the bytes are those FastAPI's own
    serialisation of the response model gives (the POST's)."""
    assert client.get("/sources").json()["total"] == 0
    problem_of(client.get("/sources/web"), 404)  # cached as absent...
    created = client.post("/sources", json=web())
    assert created.status_code == 201
    fetched = client.get("/sources/web")  # ...until the write
    assert fetched.content == created.content and fetched.headers["content-type"] == "application/json"
    assert [item["name"] for item in client.get("/sources").json()["items"]] == ["web"]
    assert client.delete("/sources/web").status_code == 204
    problem_of(client.get("/sources/web"), 404)
    assert client.get("/sources").json() == {"items": [], "total": 0, "limit": 50, "offset": 0}
