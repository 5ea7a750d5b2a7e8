"""Jobs through the REST API, on the shared Ray instance: a curation run, a mix build on its
output and a training run on the build; cancel; an API restarted while a job runs; a job whose
worker is lost and that resumes; and requests refused at the door, naming the field."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.jobs import MAX_ATTEMPTS, actor_alive, end_actor
from api.paths import DataRoots
from mixer.tokenizer import train_tokenizer

pytestmark = pytest.mark.usefixtures("ray_runtime")
WORDS = "alpha beta gamma delta value total count index result buffer node item".split()


def code_document(rng: random.Random, number: int) -> str:
    lines = [f"def f{number}_{line}({rng.choice(WORDS)}):\n    return {rng.choice(WORDS)} + {line}\n"
             for line in range(rng.randint(6, 12))]
    return "".join(lines)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("jobs")
    rng = random.Random(0)
    texts = [code_document(rng, number) for number in range(300)]
    (root / "data").mkdir()
    (root / "data" / "code.jsonl").write_text("".join(json.dumps({"id": str(i), "text": text}) + "\n"
                                                      for i, text in enumerate(texts)))
    return root


def app_client(root: Path, state: str = "state.duckdb") -> TestClient:
    return TestClient(create_app(str(root / state), data_roots=DataRoots((root,)), runs_root=root / "runs",
                                 reconcile_seconds=0.2))


def finished(client: TestClient, path: str, timeout: float = 240.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = client.get(path).json()
        if record["status"] != "running":
            return record
        time.sleep(0.3)
    raise TimeoutError(f"{path} still running after {timeout:.0f}s")


def curation_config(output: str) -> dict:
    return {"output": output, "sources": [{"name": "code", "path": "data/code.jsonl", "format": "jsonl",
                                           "kind": "code", "id_field": "id"}]}


def mixture(name: str, corpus: str, tokens: int) -> dict:
    return {"name": name, "corpus": [corpus], "tokenizer": "tokenizer.json", "seed": 5,
            "phases": [{"name": "p", "tokens": tokens, "seq_len": 64,
                        "sources": [{"name": "code", "select": {"domain": "code"}, "weight": 1.0,
                                     "max_epochs": 40}]}]}


def train_spec(output: str, **overrides) -> dict:
    return {"name": "t", "mixture": "unused", "output": output, "device": "cpu",
            "model": {"vocab_size": None, "d_model": 32, "n_layers": 1, "n_heads": 2, "ffn_hidden": 64},
            "phases": [{"name": "p", "mixture_phase": "p", "seq_len": 64, "batch_size": 2}],
            "checkpoint_every": 5, "tensorboard": False, **overrides}


@pytest.fixture(scope="module")
def built(root) -> dict:
    """A curation run, then a small and a large mix build of its output, through the API."""
    with app_client(root) as client:
        launched = client.post("/curation-runs", json={"config": curation_config("curated")})
        assert launched.status_code == 202, launched.text
        curation = finished(client, f"/curation-runs/{launched.json()['id']}")
        train_tokenizer([str(root / "curated")], str(root / "tokenizer.json"), vocab_size=300)
        for name, tokens in (("small", 64 * 16), ("large", 64 * 2 * 400)):
            assert client.post("/mixtures", json=mixture(name, "curated", tokens)).status_code == 201
        builds = {name: finished(client, "/mix-builds/" + client.post("/mix-builds", json={"mixture": name})
                                 .json()["id"]) for name in ("small", "large")}
    return {"curation": curation, **builds}


def test_a_curation_run_reports_progress_counts_logs_and_artefacts(root, built):
    record = built["curation"]
    assert record["status"] == "succeeded", record["error"]
    assert record["output"] == str(root / "curated") and record["attempts"] == 1
    assert record["result"]["counts"]["input"] == 300
    assert record["progress"]["stage"] == "done" and record["progress"]["documents"] == 300
    with app_client(root) as client:
        logs = client.get(f"/curation-runs/{record['id']}/logs").json()
        assert logs["lines"][0] == "job: curation started"
        assert any(line.startswith("curate: 300 in, ") for line in logs["lines"])
        assert client.get(f"/curation-runs/{record['id']}/logs", params={"offset": 2}).json()["lines"] \
            == logs["lines"][2:]
        artefacts = {item["path"] for item in client.get(f"/curation-runs/{record['id']}/artefacts").json()}
        assert "manifest.json" in artefacts
        manifest = client.get(f"/curation-runs/{record['id']}/artefacts/manifest.json").json()
        assert manifest["counts"]["input"] == 300
        listed = client.get("/curation-runs", params={"status": "succeeded"}).json()
        assert [item["id"] for item in listed["items"]] == [record["id"]] and listed["total"] == 1
        assert client.get(f"/mix-builds/{record['id']}").status_code == 404  # another kind
        every = client.get("/runs").json()
        assert {item["kind"] for item in every["items"]} == {"curation", "mix-build"} and every["total"] == 3
        assert client.get("/runs", params={"kind": "curation"}).json()["items"] == listed["items"]


def test_a_mix_build_and_a_training_run_on_it(root, built):
    build = built["small"]
    assert build["status"] == "succeeded", build["error"]
    assert build["result"]["phases"]["p"]["sequences"] == 16
    with app_client(root) as client:
        report = client.get(f"/mix-builds/{build['id']}/report").json()
        assert report["phases"][0]["n_sequences"] == 16
        launched = client.post("/training-runs", json={"spec": train_spec("trained"), "mix_build": build["id"]})
        assert launched.status_code == 202, launched.text
        assert launched.json()["request"]["mixture"] == build["output"]
        record = finished(client, f"/training-runs/{launched.json()['id']}")
        assert record["status"] == "succeeded", record["error"]
        assert record["result"]["steps"] == 8
        metrics = client.get(f"/training-runs/{record['id']}/metrics").json()
        assert [line["step"] for line in metrics["records"]] == list(range(1, 9))
        assert client.get(f"/training-runs/{record['id']}/metrics", params={"offset": 8}).json()["records"] == []
        assert record["progress"]["stage"] == "p"


def test_cancel_stops_a_running_job_and_a_finished_one_cannot_be(root, built):
    with app_client(root) as client:
        spec = train_spec("cancelled", checkpoint_every=1)
        job = client.post("/training-runs", json={"spec": spec, "mix_build": built["large"]["id"]}).json()
        wait_until(lambda: (root / "cancelled" / "metrics.jsonl").exists(), "training started")
        cancelled = client.post(f"/training-runs/{job['id']}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        wait_until(lambda: not actor_alive(job["id"]), "actor ended")
        again = client.post(f"/training-runs/{job['id']}/cancel")
        assert again.status_code == 409 and "cancelled" in again.json()["detail"]
        time.sleep(1.0)  # reconcile passes leave it cancelled: never resumed
        record = client.get(f"/training-runs/{job['id']}").json()
        assert record["status"] == "cancelled" and record["attempts"] == 1
        assert client.get(f"/training-runs/{job['id']}/logs").json()["lines"][-1] == "job: cancelled by request"


def test_a_job_outlives_an_api_restart_and_the_new_api_records_its_end(root, built):
    with app_client(root) as client:
        job = client.post("/training-runs", json={"spec": train_spec("restarted", checkpoint_every=50),
                                                  "mix_build": built["large"]["id"]}).json()
    # the API is down; the job goes on
    wait_until(lambda: (root / "restarted" / "metrics.jsonl").exists(), "training started")
    assert actor_alive(job["id"])
    with app_client(root) as client:
        record = finished(client, f"/training-runs/{job['id']}")
        assert record["status"] == "succeeded", record["error"]
        assert record["attempts"] == 1 and record["result"]["steps"] == 400
    assert not actor_alive(job["id"])


def test_a_lost_worker_is_resumed_from_the_last_checkpoint(root, built):
    with app_client(root) as client:
        job = client.post("/training-runs", json={"spec": train_spec("lost", checkpoint_every=20),
                                                  "mix_build": built["large"]["id"]}).json()
        wait_until(lambda: (root / "lost" / "checkpoints" / "latest").exists(), "a checkpoint")
        end_actor(job["id"])  # the worker dies without a word
        record = finished(client, f"/training-runs/{job['id']}")
        assert record["status"] == "succeeded", record["error"]
        assert 2 <= record["attempts"] <= MAX_ATTEMPTS
        logs = client.get(f"/training-runs/{job['id']}/logs").json()["lines"]
        assert any(line.startswith("job: worker lost; launching again with resume") for line in logs)
        assert "job: training resumed" in logs
        steps = [line["step"] for line in client.get(f"/training-runs/{job['id']}/metrics",
                                                     params={"limit": 1000}).json()["records"]]
        assert steps == list(range(1, 401))  # every step once: the resume dropped what it redid


def test_bad_launches_are_refused_naming_the_field(root, built, tmp_path):
    outside = tmp_path / "outside.jsonl"
    outside.write_text('{"id": "1", "text": "x"}\n')
    with app_client(root) as client:
        before = totals(client)
        config = curation_config("elsewhere")
        config["sources"][0]["path"] = str(outside)
        refused = client.post("/curation-runs", json={"config": config})
        assert refused.status_code == 422 and refused.json()["field"] == "config.sources.0.path"
        config = {**curation_config("x"), "unknown": 1}
        refused = client.post("/curation-runs", json={"config": config})
        assert refused.status_code == 422 and refused.json()["field"] == "config.unknown"
        # a file outside the roots is refused alike whether it exists or not: no probing by errors
        for model in (outside, tmp_path / "absent.bin"):
            config = {**curation_config("x"), "quality": {"classifiers": {"code": str(model)}}}
            refused = client.post("/curation-runs", json={"config": config})
            assert refused.status_code == 422 and refused.json()["field"] == "config.quality.classifiers.code"
            assert "outside the data roots" in refused.json()["detail"]
        # inside them, a relative path is the first root's, and a missing file is named as such
        config = {**curation_config("x"), "quality": {"classifiers": {"code": "models/absent.bin"}}}
        refused = client.post("/curation-runs", json={"config": config})
        assert refused.status_code == 422 and str(root / "models" / "absent.bin") in refused.json()["detail"]
        refused = client.post("/curation-runs", json={"config": {**curation_config("x"), "sources": ["nope"]}})
        assert refused.status_code == 422 and "nope" in refused.json()["detail"]
        refused = client.post("/mix-builds", json={"mixture": "absent"})
        assert refused.status_code == 404 and refused.json()["field"] == "mixture"
        refused = client.post("/mix-builds", json={"mixture": "small", "output": "../escape"})
        assert refused.status_code == 422 and refused.json()["field"] == "output"
        refused = client.post("/training-runs", json={"spec": train_spec("t2"), "mix_build": built["curation"]["id"]})
        assert refused.status_code == 404 and refused.json()["field"] == "mix_build"
        refused = client.post("/training-runs", json={"spec": train_spec("t2", seed="x"), "mix_build": built["small"]["id"]})
        assert refused.status_code == 422 and refused.json()["field"] == "spec.seed"
        build = built["small"]["id"]
        assert client.get(f"/mix-builds/{build}/artefacts/../report.json").status_code in (404, 422)
        refused = client.get(f"/mix-builds/{build}/artefacts/%2E%2E/%2E%2E/state.duckdb")
        assert refused.status_code == 422
        assert client.get("/mix-builds/mixbu-000000000000").status_code == 404
        assert client.get("/mix-builds/not-an-id").status_code == 422
        assert totals(client) == before  # nothing refused was recorded


def totals(client: TestClient) -> list[int]:
    return [client.get(kind).json()["total"] for kind in ("/curation-runs", "/mix-builds", "/training-runs")]


def wait_until(check, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f}s")
        time.sleep(0.1)
