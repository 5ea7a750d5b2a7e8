"""The docker compose topology as local processes: a Ray head, a worker joined to it, and the
commands of the API and of a curation run pointed at the head through RAY_ADDRESS, all with
Ray's token authentication on, as in docker-compose.yml."""

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
import urllib.request
from pathlib import Path

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


def test_api_serves_when_pointed_at_the_head(cluster, tmp_path):
    port = free_port()
    env = {**cluster["env"], "MIDTRAIN_STATE": str(tmp_path / "state.duckdb"), "MIDTRAIN_API_TOKEN": "t"}
    api = subprocess.Popen([str(BIN / "midtrain"), "serve", "--port", str(port)], env=env,
                           start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_for(healthy, "API health", seconds=60)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/mixtures")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 401
    finally:
        stop(api)
