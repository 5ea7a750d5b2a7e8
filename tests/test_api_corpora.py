"""Corpora through the REST API: a succeeded curation job's catalog and sample documents
(api/routes/corpora.py, api.service.corpus_stats / corpus_documents)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mixer_fixtures import sample_rows, write_corpus

from api import service
from api.app import create_app
from api.paths import DataRoots
from api.state import utc_now
from corpus.manifest import Counts, DomainTotals, Manifest, ShardRecord, sha256_file, write_manifest

ROWS = sample_rows()  # 31 web (6 long_doc), 20 code, 10 math


def write_curated(out: Path) -> Path:
    shuffled = list(ROWS)
    random.Random(5).shuffle(shuffled)  # so the shards' order is not the ids' order
    write_corpus(out, shuffled)
    shards = [
        ShardRecord(path=str(path.relative_to(out)), domain=path.parent.name.removeprefix("domain="),
                    rows=sum(row["domain"] == path.parent.name.removeprefix("domain=") for row in ROWS),
                    bytes=path.stat().st_size, sha256=sha256_file(path))
        for path in sorted((out / "shards").glob("domain=*/*.parquet"))
    ]
    domains = {
        domain: DomainTotals(
            documents=sum(row["domain"] == domain for row in ROWS),
            chars=sum(row["n_chars"] for row in ROWS if row["domain"] == domain),
            tokens=sum(row["n_tokens"] for row in ROWS if row["domain"] == domain),
        )
        for domain in ("code", "math", "web")
    }
    write_manifest(out, Manifest(
        run_id="run-1", config_hash="c0ffee", started_at="2025-01-01T00:00:00Z",
        finished_at="2025-01-01T00:01:00Z", tokenizer="words", inputs=[],
        counts=Counts(input=len(ROWS) + 5, kept=len(ROWS), dropped={"gopher_quality": 3, "exact_duplicate": 2}),
        domains=domains, shards=shards,
    ))
    return out


@pytest.fixture(scope="module")
def curated(tmp_path_factory) -> Path:
    return write_curated(tmp_path_factory.mktemp("root") / "runs" / "curated")


def add_job(store, job_id: str, kind: str, status: str, output: Path) -> None:
    store.execute(
        "INSERT INTO jobs (id, kind, status, request, output, created_at, attempts) VALUES (?, ?, ?, ?, ?, ?, 1)",
        [job_id, kind, status, json.dumps({}), str(output), utc_now()],
    )


@pytest.fixture()
def client(tmp_path, curated, monkeypatch):
    monkeypatch.delenv("MIDTRAIN_API_TOKEN", raising=False)
    app = create_app(str(tmp_path / "state.duckdb"), data_roots=DataRoots((curated.parent.parent,)))
    with TestClient(app) as test_client:
        store = app.state.store
        add_job(store, "cur-ok", "curation", "succeeded", curated)
        add_job(store, "cur-running", "curation", "running", curated)
        add_job(store, "cur-failed", "curation", "failed", curated)
        add_job(store, "cur-gone", "curation", "succeeded", tmp_path / "deleted")
        add_job(store, "train-ok", "training", "succeeded", curated)
        yield test_client


def problem_of(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()


def test_stats_of_a_succeeded_run(client, curated):
    response = client.get("/corpora/cur-ok")
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["output"] == str(curated) and stats["run_id"] == "run-1"
    assert stats["counts"] == {"input": 66, "kept": 61, "dropped": {"gopher_quality": 3, "exact_duplicate": 2},
                               "quarantined": 0}
    assert stats["shards"] == 3 and stats["shard_bytes"] == sum(
        path.stat().st_size for path in curated.glob("shards/*/*.parquet"))
    by_domain = {row["domain"]: row for row in stats["domains"]}
    assert {domain: row["documents"] for domain, row in by_domain.items()} == {"code": 20, "math": 10, "web": 31}
    assert by_domain["web"]["long_docs"] == 6 and by_domain["web"]["sources"] == 2
    assert by_domain["math"]["tokens"] == sum(row["n_tokens"] for row in ROWS if row["domain"] == "math")
    assert stats["domains"] == json.loads(json.dumps(service.catalog(curated)))


@pytest.mark.parametrize("run_id, status", [
    ("nope", 404), ("train-ok", 404),  # a job of another kind is no corpus
    ("cur-running", 409), ("cur-failed", 409), ("cur-gone", 409),
])
def test_unknown_and_unfinished_runs(client, run_id, status):
    for path in (f"/corpora/{run_id}", f"/corpora/{run_id}/documents"):
        problem = problem_of(client.get(path), status)
        assert run_id in problem["detail"]


def test_documents_page_by_id(client):
    page = client.get("/corpora/cur-ok/documents", params={"limit": 5}).json()
    expected = sorted(row["id"] for row in ROWS)
    assert page["total"] == 61 and page["limit"] == 5 and page["offset"] == 0
    assert [item["id"] for item in page["items"]] == expected[:5]
    later = client.get("/corpora/cur-ok/documents", params={"limit": 500, "offset": 58}).json()
    assert [item["id"] for item in later["items"]] == expected[58:]
    first = page["items"][0]
    row = next(row for row in ROWS if row["id"] == first["id"])
    assert first["text"] == row["text"] and first["truncated"] is False
    assert {key: first[key] for key in ("source", "domain", "tags", "n_tokens", "n_chars")} == {
        key: row[key] for key in ("source", "domain", "tags", "n_tokens", "n_chars")}
    assert first["quality"] == pytest.approx(row["quality"])


def test_documents_filtered_by_domain_and_tag(client):
    def ids(**params) -> tuple[list[str], int]:
        page = client.get("/corpora/cur-ok/documents", params={"limit": 500, **params}).json()
        return [item["id"] for item in page["items"]], page["total"]

    code, total = ids(domain="code")
    assert total == 20 and code == sorted(row["id"] for row in ROWS if row["domain"] == "code")
    long_docs, total = ids(tag="long_doc")
    assert total == 6 and long_docs == sorted(row["id"] for row in ROWS if "long_doc" in row["tags"])
    assert ids(domain="web", tag="long_doc") == (long_docs, 6)
    assert ids(domain="code", tag="long_doc") == ([], 0)
    assert ids(tag="x' OR '1'='1") == ([], 0)  # a filter is a bound value, never SQL


def test_texts_are_cut_to_max_chars(client):
    items = client.get("/corpora/cur-ok/documents", params={"domain": "web", "max_chars": 10}).json()["items"]
    assert items and all(len(item["text"]) == 10 and item["truncated"] for item in items)
    assert all(item["text"] == next(row["text"] for row in ROWS if row["id"] == item["id"])[:10] for item in items)


def test_bad_query_parameters(client):
    assert problem_of(client.get("/corpora/cur-ok/documents", params={"domain": "poetry"}), 422)["field"] == \
        "query.domain"
    assert problem_of(client.get("/corpora/cur-ok/documents", params={"limit": 501}), 422)["field"] == "query.limit"
    assert problem_of(client.get("/corpora/cur-ok/documents", params={"offset": -1}), 422)["field"] == "query.offset"
