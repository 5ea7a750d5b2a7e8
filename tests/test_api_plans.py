"""The API's plan cache (api/plans.py): a cached plan is the uncached plan exactly; a changed
shard, tokenizer or mixture version is planned again; identical concurrent requests compute once."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mixer_fixtures import TEST_VOCAB_SIZE, document, sample_rows, write_corpus

from api.app import create_app
from api.paths import DataRoots
from api.plans import PlanCache, plan_key
from mixer.documents import DocumentCache
from mixer.plan import PlanError, plan_mixture
from mixer.spec import MixtureSpec
from mixer.tokenizer import load_tokenizer, train_tokenizer

PHASES = [{"name": "general", "tokens": 3_000, "seq_len": 64,
           "sources": [{"name": "web", "select": {"domain": "web"}, "weight": 0.6},
                       {"name": "code", "select": {"domain": "code"}, "weight": 0.3},
                       {"name": "math", "select": {"domain": "math"}, "weight": 0.1}]}]
SPEC = {"name": "mix", "corpus": ["curated"], "tokenizer": "tok.json", "seed": 3, "phases": PHASES}


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    write_corpus(root / "curated", sample_rows())
    train_tokenizer([str(root / "curated")], str(root / "tok.json"), TEST_VOCAB_SIZE)
    return root


@pytest.fixture()
def client(tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MIDTRAIN_API_TOKEN", raising=False)
    app = create_app(str(tmp_path / "state.duckdb"), data_roots=DataRoots((root,)))
    with TestClient(app) as test_client:
        yield test_client


def uncached(root: Path, spec: dict) -> dict:
    """The plan from fully tokenised documents, no cache of any kind: the reference."""
    confined = DataRoots((root,)).mixture(MixtureSpec.model_validate(spec))
    cache = DocumentCache(list(confined.corpus), load_tokenizer(confined.tokenizer))
    return json.loads(plan_mixture(confined, cache).model_dump_json())


def plan_of(client: TestClient, **params) -> dict:
    response = client.get("/mixtures/mix/plan", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_cached_plan_is_the_uncached_plan(client: TestClient, root: Path) -> None:
    client.post("/mixtures", json=SPEC)
    first, second = plan_of(client), plan_of(client)
    assert first == second == uncached(root, SPEC)
    assert client.app.state.plans.computed == 1  # the second came from the cache


def test_a_changed_shard_is_planned_again(client: TestClient, root: Path) -> None:
    client.post("/mixtures", json=SPEC)
    before = plan_of(client)
    rows = [row if row["domain"] != "math" else document(row["id"], row["text"] * 3, "math")
            for row in sample_rows()]
    shutil.rmtree(root / "curated" / "shards")
    write_corpus(root / "curated", rows)
    after = plan_of(client)
    assert after != before and after == uncached(root, SPEC)
    math = [source for source in after["phases"][0]["sources"] if source["name"] == "math"][0]
    assert math["tokens_available"] > [s for s in before["phases"][0]["sources"] if s["name"] == "math"][0][
        "tokens_available"]
    assert client.app.state.plans.computed == 2


def test_a_new_version_or_tokenizer_is_planned_again(client: TestClient, root: Path) -> None:
    client.post("/mixtures", json=SPEC)
    v1 = plan_of(client)
    changed = {**SPEC, "phases": [{**PHASES[0], "tokens": 4_000}]}
    client.post("/mixtures", json=changed)
    v2 = plan_of(client)
    assert v2["phases"][0]["tokens"] == 4_000 and v2 == uncached(root, changed)
    assert plan_of(client, version=1) == v1  # the old version's plan is still right (and cached)
    train_tokenizer([str(root / "curated")], str(root / "tok.json"), TEST_VOCAB_SIZE - 60)
    retrained = plan_of(client)
    assert retrained != v2 and retrained == uncached(root, changed)
    assert client.app.state.plans.computed == 3


def test_identical_concurrent_requests_compute_once(root: Path) -> None:
    gate, calls = threading.Event(), []

    def slow_plan(spec: MixtureSpec) -> dict:
        calls.append(spec.name)
        gate.wait(10)
        return {"mixture": spec.name}

    plans = PlanCache(slow_plan)
    spec = DataRoots((root,)).mixture(MixtureSpec.model_validate(SPEC))
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(plans.get(spec))) for _ in range(20)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(10)
    assert calls == ["mix"] and plans.computed == 1
    assert results == [b'{"mixture":"mix"}'] * 20
    plans.close()


def test_errors_reach_every_waiter_and_are_not_kept(root: Path) -> None:
    outcomes = iter([PlanError(["phase 'general': no"]), {"ok": True}])

    def flaky(spec: MixtureSpec) -> dict:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    plans = PlanCache(flaky)
    spec = DataRoots((root,)).mixture(MixtureSpec.model_validate(SPEC))
    with pytest.raises(PlanError):
        plans.get(spec)
    assert plans.get(spec) == b'{"ok":true}' and plans.computed == 2
    plans.close()


def test_the_key_follows_the_inputs(root: Path) -> None:
    spec = DataRoots((root,)).mixture(MixtureSpec.model_validate(SPEC))
    key = plan_key(spec)
    assert plan_key(spec) == key
    assert plan_key(spec.model_copy(update={"seed": 4})) != key
    (root / "curated" / "shards" / "domain=web" / "part-0.parquet").touch()
    assert plan_key(spec) != key
