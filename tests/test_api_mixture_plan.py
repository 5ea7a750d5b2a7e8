"""Mixtures beyond storage: validation with confined paths, the planner's plan and decoded
previews of a phase (api/routes/mixtures.py, api.service.mixture_plan / mixture_preview)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mixer_fixtures import TEST_VOCAB_SIZE, WORDS, sample_rows, write_corpus

from api import service
from api.app import create_app
from api.paths import DataRoots
from mixer.spec import MixtureSpec
from mixer.tokenizer import train_tokenizer

PHASES = [
    {
        "name": "general",
        "tokens": 3_000,
        "seq_len": 64,
        "sources": [
            {"name": "web", "select": {"domain": "web", "tags_none": ["long_doc"]}, "weight": 0.6},
            {"name": "code", "select": {"domain": "code"}, "weight": 0.3},
            {"name": "math", "select": {"domain": "math"}, "weight": 0.1},
        ],
    },
    {
        "name": "long",
        "tokens": 2_000,
        "seq_len": 256,
        "packing": {"method": "best_fit", "window": 8},
        "replay": {"phase": "general", "share": 0.3},
        "sources": [{"name": "long", "select": {"tags_any": ["long_doc"]}, "weight": 1}],
    },
]
# Paths relative to the data root, as a client would send them.
SPEC = {"name": "mix", "corpus": ["curated"], "tokenizer": "tok.json", "seed": 3, "phases": PHASES}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("root")
    write_corpus(root / "curated", sample_rows())
    train_tokenizer([str(root / "curated")], str(root / "tok.json"), TEST_VOCAB_SIZE)
    (root / "empty").mkdir()
    return root


@pytest.fixture()
def client(tmp_path, root, monkeypatch):
    monkeypatch.delenv("MIDTRAIN_API_TOKEN", raising=False)
    app = create_app(str(tmp_path / "state.duckdb"), data_roots=DataRoots((root,)))
    with TestClient(app) as test_client:
        yield test_client


def spec(**changes) -> dict:
    return {**copy.deepcopy(SPEC), **changes}


def problem_of(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()


def test_validate_a_good_spec(client):
    response = client.post("/mixtures/validate", json=SPEC)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["valid"] is True
    assert body["spec"] == MixtureSpec.model_validate(SPEC).model_dump(mode="json")
    assert client.get("/mixtures").json()["total"] == 0  # validating saves nothing


@pytest.mark.parametrize("changes, field, words", [
    ({"corpus": ["curated", "/etc"]}, "corpus.1", "outside the data roots"),
    ({"corpus": ["../curated"]}, "corpus.0", "'..'"),
    ({"corpus": ["missing"]}, "corpus.0", "is not a folder"),
    ({"corpus": ["curated", "empty"]}, "corpus.1", "no curated shards"),
    ({"tokenizer": "/etc/passwd"}, "tokenizer", "outside the data roots"),
    ({"tokenizer": "missing.json"}, "tokenizer", "not found"),
    ({"tokenizer": "curated"}, "tokenizer", "not found"),  # a folder
])
def test_validate_names_the_bad_path(client, changes, field, words):
    problem = problem_of(client.post("/mixtures/validate", json=spec(**changes)), 422)
    assert problem["field"] == field and words in problem["detail"], problem


def test_validate_reports_schema_errors_as_usual(client):
    bad = spec()
    bad["phases"][0]["sources"][1]["weight"] = -1
    assert problem_of(client.post("/mixtures/validate", json=bad), 422)["field"] == "phases.0.sources.1.weight"


def test_saving_refuses_paths_outside_the_roots(client, tmp_path):
    problem = problem_of(client.post("/mixtures", json=spec(corpus=["curated", str(tmp_path)])), 422)
    assert problem["field"] == "corpus.1"
    assert problem_of(client.post("/mixtures", json=spec(tokenizer="../tok.json")), 422)["field"] == "tokenizer"
    assert client.get("/mixtures").json()["total"] == 0
    # inside the roots a path need not exist yet when saving
    created = client.post("/mixtures", json=spec(corpus=["runs/later"]))
    assert created.status_code == 201 and created.json()["spec"]["corpus"] == ["runs/later"]


def test_plan_of_a_stored_mixture(client, root):
    client.post("/mixtures", json=SPEC)
    response = client.get("/mixtures/mix/plan")
    assert response.status_code == 200, response.text
    plan = response.json()
    expected = service.mix_plan(DataRoots((root,)).mixture(MixtureSpec.model_validate(SPEC)))
    assert plan == json.loads(expected.model_dump_json())
    assert plan["tokenizer"] == str(root / "tok.json")  # planned with the confined paths
    general, long = plan["phases"]
    assert [source["name"] for source in general["sources"]] == ["web", "code", "math"]
    assert sum(source["tokens_target"] for source in general["sources"]) == 3_000
    assert [source["name"] for source in long["sources"]] == ["long", "general.web", "general.code", "general.math"]


def test_plan_of_a_version(client):
    client.post("/mixtures", json=SPEC)
    changed = spec()
    changed["phases"][0]["tokens"] = 4_000
    client.post("/mixtures", json=changed)
    assert client.get("/mixtures/mix/plan").json()["phases"][0]["tokens"] == 4_000
    assert client.get("/mixtures/mix/plan", params={"version": 1}).json()["phases"][0]["tokens"] == 3_000
    assert "version 3" in problem_of(client.get("/mixtures/mix/plan", params={"version": 3}), 404)["detail"]
    problem_of(client.get("/mixtures/nope/plan"), 404)


def test_a_plan_error_is_a_422_naming_phase_and_source(client):
    bad = spec()
    bad["phases"][0]["sources"][2] = {"name": "math", "select": {"domain": "reasoning"}, "weight": 0.1}
    client.post("/mixtures", json=bad)
    problem = problem_of(client.get("/mixtures/mix/plan"), 422)
    assert problem["field"] == "phases.0.sources.2"
    assert "phase 'general', source 'math'" in problem["detail"] and "matches no documents" in problem["detail"]


def test_stored_paths_are_confined_again_when_used(client, root, tmp_path):
    client.post("/mixtures", json=spec(corpus=["runs/later"]))  # saved, though not there yet
    assert "is not a folder" in problem_of(client.get("/mixtures/mix/plan"), 422)["detail"]
    client.post("/mixtures", json=spec(name="abs", corpus=[str(root / "curated")], tokenizer=str(root / "tok.json")))
    assert client.get("/mixtures/abs/plan").status_code == 200
    client.app.state.roots = DataRoots((tmp_path,))  # as if the server restarted with other roots
    for path in ("/mixtures/abs/plan", "/mixtures/abs/preview"):
        problem = problem_of(client.get(path), 422)
        assert problem["field"] == "corpus.0" and "outside the data roots" in problem["detail"]


def test_preview_decodes_sequences_of_a_phase(client):
    client.post("/mixtures", json=SPEC)
    response = client.get("/mixtures/mix/preview", params={"phase": "general", "sequences": 3})
    assert response.status_code == 200, response.text
    preview = response.json()
    assert (preview["mixture"], preview["phase"], preview["seq_len"]) == ("mix", "general", 64)
    assert preview["tokens_budget"] == 3 * 64 and len(preview["sequences"]) == 3
    domains = {"web": "web", "code": "code", "math": "math"}
    seen = set()
    for number, sequence in enumerate(preview["sequences"]):
        assert sequence["index"] == number
        assert sum(segment["tokens"] for segment in sequence["segments"]) == 64
        for segment in sequence["segments"]:
            assert segment["padding"] is False and segment["text"]  # concat packing: no padding
            assert segment["domain"] == domains[segment["source"]]
            seen.add(segment["source"])
    texts = {source: " ".join(segment["text"] for sequence in preview["sequences"]
                              for segment in sequence["segments"] if segment["source"] == source) for source in seen}
    assert "web" in seen and any(word in texts["web"] for word in WORDS)
    if "code" in seen:
        assert any(marker in texts["code"] for marker in ("def ", "return", "for x in", "+="))
    # the first phase by default, and the same sequences again: the build is deterministic
    assert client.get("/mixtures/mix/preview", params={"sequences": 3}).json() == preview


def test_preview_cuts_texts_and_shows_padding_of_a_best_fit_replay_phase(client):
    client.post("/mixtures", json=SPEC)
    response = client.get("/mixtures/mix/preview", params={"phase": "long", "sequences": 8, "max_chars": 5})
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["seq_len"] == 256 and len(preview["sequences"]) == 8
    segments = [segment for sequence in preview["sequences"] for segment in sequence["segments"]]
    assert all(sum(segment["tokens"] for segment in sequence["segments"]) == 256 for sequence in preview["sequences"])
    real = [segment for segment in segments if not segment["padding"]]
    assert real and all(len(segment["text"]) <= 5 for segment in real)
    assert any(segment["truncated"] for segment in real)
    assert {segment["source"] for segment in real} <= {"long", "general.web", "general.code", "general.math"}
    padding = [segment for segment in segments if segment["padding"]]
    assert padding and all(segment["source"] is None and segment["text"] == "" for segment in padding)


def test_preview_not_found_and_bad_parameters(client):
    client.post("/mixtures", json=SPEC)
    assert "'nope'" in problem_of(client.get("/mixtures/mix/preview", params={"phase": "nope"}), 404)["detail"]
    problem_of(client.get("/mixtures/other/preview"), 404)
    problem_of(client.get("/mixtures/mix/preview", params={"version": 2}), 404)
    assert problem_of(client.get("/mixtures/mix/preview", params={"sequences": 0}), 422)["field"] == "query.sequences"
