"""The docker compose topology as local processes: a Ray head, a worker joined to it, and the
commands of the API and of a curation run pointed at the head through RAY_ADDRESS, all with
Ray's token authentication on, as in docker-compose.yml.

The API runs as ``midtrain serve`` with the environment compose gives it (RAY_ADDRESS,
MIDTRAIN_API_TOKEN, MIDTRAIN_DATA_ROOTS, MIDTRAIN_STATE, MIDTRAIN_RUNS) and is driven over HTTP
only: a curation run, a mixture on its output, a mix build and a training run on the build.
Then the API process is killed (SIGKILL) while a job runs, and a new one on the same state and
cluster records that job's end: the detached actor outlived the API, and was never relaunched."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import random
from pathlib import Path

import httpx
import pytest

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, what: str, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1.0)
    raise TimeoutError(f"{what} did not happen within {seconds:.0f}s")


def stop(process: subprocess.Popen) -> None:
    """Each service runs in its own process group: end the group, then kill what outlives it."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # the whole group is gone already
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster():
    # Short paths: Ray's Unix sockets live under the temp dir and have a length limit.
    root = Path(tempfile.mkdtemp(prefix="mtray-", dir="/tmp"))
    token = root / "auth_token"
    token.write_text(secrets.token_hex(32))
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    env.pop("RAY_ADDRESS", None)

    def service(*command: str) -> subprocess.Popen:
        return subprocess.Popen(command, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    processes = [service(str(BIN / "ray"), "start", "--head", "--block", f"--port={port}",
                         "--num-cpus=1", "--include-dashboard=false", f"--temp-dir={root / 'ray'}")]
    client_env = {**env, "RAY_ADDRESS": f"127.0.0.1:{port}"}
    try:
        wait_for(lambda: subprocess.run([str(BIN / "ray"), "status", f"--address=127.0.0.1:{port}"],
                                        env=env, capture_output=True).returncode == 0, "head start")
        processes.append(service(str(BIN / "ray"), "start", f"--address=127.0.0.1:{port}",
                                 "--block", "--num-cpus=1"))
        count = [sys.executable, "-c", "import ray; ray.init(logging_level='ERROR'); "
                                       "print(sum(node['Alive'] for node in ray.nodes()))"]
        wait_for(lambda: subprocess.run(count, env=client_env, capture_output=True,
                                        text=True).stdout.strip() == "2", "worker join")
        yield {"env": client_env, "root": root, "processes": processes}
    finally:
        for process in reversed(processes):
            stop(process)


def test_curation_runs_on_the_cluster(cluster, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(
        json.dumps({"id": str(i), "text": f"def f{i}(x):\n    return x + {i}\n"}) for i in range(20)
    ) + "\n")
    config = tmp_path / "curate.json"
    config.write_text(json.dumps({
        "output": str(tmp_path / "out"),
        "sources": [{"name": "code", "path": str(data), "format": "jsonl", "kind": "code", "id_field": "id"}],
    }))
    result = subprocess.run([str(BIN / "midtrain"), "curate", str(config)], env=cluster["env"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["counts"]["input"] == 20 and manifest["counts"]["kept"] == 20


TOKEN = "topology-token"
WORDS = "alpha beta gamma delta value total count index result buffer node item".split()


class Api:
    """``midtrain serve`` as a subprocess with compose's environment, its output in a log file."""

    def __init__(self, cluster: dict, root: Path, log: Path) -> None:
        self.port = free_port()
        env = {**cluster["env"], "MIDTRAIN_API_TOKEN": TOKEN, "MIDTRAIN_DATA_ROOTS": str(root),
               "MIDTRAIN_STATE": str(root / "state.duckdb"), "MIDTRAIN_RUNS": str(root / "runs")}
        self.log = log
        with log.open("a") as handle:
            self.process = subprocess.Popen([str(BIN / "midtrain"), "serve", "--port", str(self.port)],
                                            env=env, cwd=root, start_new_session=True, stdout=handle,
                                            stderr=subprocess.STDOUT)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30,
                                 headers={"Authorization": f"Bearer {TOKEN}"})
        try:
            wait_for(self.healthy, "API health", seconds=60)
        except TimeoutError:
            self.close()
            raise AssertionError(f"the API did not start:\n{log.read_text()[-3000:]}") from None

    def healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the API exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
        try:
            return self.http.get("/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def post(self, path: str, body: dict, status: int) -> dict:
        response = self.http.post(path, json=body)
        assert response.status_code == status, response.text
        return response.json()

    def get(self, path: str, **params) -> dict:
        response = self.http.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def finished(self, path: str, seconds: float = 120.0) -> dict:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            record = self.get(path)
            if record["status"] != "running":
                return record
            time.sleep(0.5)
        raise TimeoutError(f"{path} still running after {seconds:.0f}s; API log:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL, no shutdown: the process gets no chance to tidy anything."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.http.close()

    def close(self) -> None:
        self.http.close()
        stop(self.process)


def code_documents(count: int, seed: int) -> str:
    rng = random.Random(seed)
    lines = []
    for number in range(count):
        text = "".join(f"def f{number}_{line}({rng.choice(WORDS)}):\n    return {rng.choice(WORDS)} + {line}\n"
                       for line in range(rng.randint(6, 12)))
        lines.append(json.dumps({"id": str(number), "text": text}) + "\n")
    return "".join(lines)


def curation_config(data: str, output: str) -> dict:
    return {"output": output, "sources": [{"name": "code", "path": data, "format": "jsonl", "kind": "code",
                                           "id_field": "id"}]}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("topology")
    (root / "data").mkdir()
    (root / "data" / "code.jsonl").write_text(code_documents(300, seed=0))
    (root / "data" / "more.jsonl").write_text(code_documents(2000, seed=1))
    return root


@pytest.fixture(scope="module")
def built(cluster, root) -> dict:
    """Over HTTP: a curation run, a mixture on its output and a mix build of that mixture."""
    api = Api(cluster, root, root / "api-1.log")
    try:
        assert httpx.get(f"http://127.0.0.1:{api.port}/mixtures").status_code == 401  # no token
        launched = api.post("/curation-runs", {"config": curation_config("data/code.jsonl", "curated")}, 202)
        assert launched["status"] == "running" and launched["output"] == str(root / "curated")
        curation = api.finished(f"/curation-runs/{launched['id']}")
        assert curation["status"] == "succeeded", curation["error"]
        found = {
            "curation": curation,
            "manifest": api.get(f"/curation-runs/{curation['id']}/artefacts/manifest.json"),
            "artefacts": {item["path"] for item in api.get(f"/curation-runs/{curation['id']}/artefacts")},
            "logs": api.get(f"/curation-runs/{curation['id']}/logs")["lines"],
        }
        # No endpoint trains tokenizers: one is trained from the curated shards on disk.
        from mixer.tokenizer import train_tokenizer

        train_tokenizer([str(root / "curated")], str(root / "tokenizer.json"), vocab_size=300)
        mixture = {"name": "code-only", "corpus": ["curated"], "tokenizer": "tokenizer.json", "seed": 5,
                   "phases": [{"name": "p", "tokens": 64 * 16, "seq_len": 64,
                               "sources": [{"name": "code", "select": {"domain": "code"}, "weight": 1.0,
                                            "max_epochs": 40}]}]}
        found["mixture"] = api.post("/mixtures", mixture, 201)
        build = api.finished("/mix-builds/" + api.post("/mix-builds", {"mixture": "code-only"}, 202)["id"])
        assert build["status"] == "succeeded", build["error"]
        found.update(build=build, report=api.get(f"/mix-builds/{build['id']}/report"))
        return found
    finally:
        api.close()


def test_a_curation_run_and_a_mix_build_over_http(built, root):
    curation = built["curation"]
    assert curation["attempts"] == 1 and curation["progress"]["stage"] == "done"
    assert curation["result"]["counts"]["input"] == 300 and curation["result"]["counts"]["kept"] == 300
    assert built["manifest"]["counts"]["kept"] == 300
    assert any(path.startswith("report/") for path in built["artefacts"]), sorted(built["artefacts"])
    assert built["logs"][0] == "job: curation started"
    assert any(line.startswith("curate: 300 in, ") for line in built["logs"])
    assert built["mixture"]["version"] == 1
    build = built["build"]
    assert build["attempts"] == 1 and build["output"].startswith(str(root / "runs" / "mix-builds"))
    assert build["result"]["phases"]["p"]["sequences"] == 16
    assert built["report"]["phases"][0]["n_sequences"] == 16


def test_a_training_run_on_the_build_over_http(cluster, root, built):
    api = Api(cluster, root, root / "api-2.log")
    try:
        spec = {"name": "t", "mixture": "unused", "output": "trained", "device": "cpu",
                "model": {"vocab_size": None, "d_model": 32, "n_layers": 1, "n_heads": 2, "ffn_hidden": 64},
                "phases": [{"name": "p", "mixture_phase": "p", "seq_len": 64, "batch_size": 2}],
                "checkpoint_every": 4, "tensorboard": False}
        training = api.post("/training-runs", {"spec": spec, "mix_build": built["build"]["id"]}, 202)
        training = api.finished(f"/training-runs/{training['id']}", seconds=60)
        assert training["status"] == "succeeded", training["error"]
        assert training["attempts"] == 1 and training["result"]["steps"] == 8
        steps = [line["step"] for line in api.get(f"/training-runs/{training['id']}/metrics")["records"]]
        assert steps == list(range(1, 9))
    finally:
        api.close()


def test_a_job_outlives_a_killed_api_and_a_new_api_records_its_end(cluster, root):
    api = Api(cluster, root, root / "api-3.log")
    try:
        job = api.post("/curation-runs", {"config": curation_config("data/more.jsonl", "more")}, 202)
        files = root / "runs" / "jobs" / job["id"]
        wait_for(lambda: (files / "log.txt").exists(), "the job's first log line", seconds=60)
        assert not (files / "result.json").exists()  # still running when the API dies
    finally:
        api.kill()
    api = Api(cluster, root, root / "api-4.log")
    try:
        record = api.finished(f"/curation-runs/{job['id']}")
        assert record["status"] == "succeeded", record["error"]
        assert record["attempts"] == 1  # the same actor finished it: never relaunched
        assert record["result"]["counts"]["input"] == 2000 and record["result"]["counts"]["kept"] == 2000
        logs = api.get(f"/curation-runs/{job['id']}/logs")["lines"]
        assert not any(line.startswith("job: worker lost") for line in logs)
        listed = api.get("/curation-runs", status="succeeded")
        assert job["id"] in {item["id"] for item in listed["items"]}
    finally:
        api.close()
