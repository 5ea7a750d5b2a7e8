"""docker-compose.yml: Debian's docker-compose accepts it, and it wires what DESIGN.md says."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose binary not on PATH (apt-get install docker-compose); the YAML checks below still run",
)
def test_docker_compose_config_accepts_the_file():
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose binary not on PATH")
def test_docker_compose_resolves_the_shared_environment():
    """What docker-compose itself makes of the anchors and merges, GPU profile included."""
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "--profile", "gpu", "config"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    for name in ("ray-worker", "trainer", "api"):
        environment = services[name]["environment"]
        assert environment["MIDTRAIN_DATA_ROOTS"] == "/work", name
        assert environment["MIDTRAIN_RUNS"] == "/work/runs", name
        assert environment["RAY_ADDRESS"] == "ray-head:6379", name


def test_services_and_their_wiring(compose):
    services = compose["services"]
    assert {"ray-head", "ray-worker", "trainer", "api"} <= set(services)
    assert "ray start --head" in " ".join(services["ray-head"]["command"])
    for name in ("ray-worker", "trainer"):
        assert "--address=ray-head:6379" in services[name]["command"]
    assert services["api"]["environment"]["RAY_ADDRESS"] == "ray-head:6379"
    assert services["api"]["command"][:2] == ["midtrain", "serve"]
    assert "--host" in services["api"]["command"] and "0.0.0.0" in services["api"]["command"]
    assert "${MIDTRAIN_API_TOKEN" in services["api"]["environment"]["MIDTRAIN_API_TOKEN"]
    head = " ".join(services["ray-head"]["command"])
    assert "--port=6379" in head and "--dashboard-host=0.0.0.0" in head and "--num-cpus=" in head
    for name in ("ray-worker", "trainer", "api"):
        assert services[name]["depends_on"]["ray-head"]["condition"] == "service_healthy", name


def test_trainer_reserves_a_gpu_and_services_have_health_checks(compose):
    services = compose["services"]
    devices = services["trainer"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert "--num-gpus=1" in services["trainer"]["command"]
    assert "healthcheck" in services["ray-head"] and "healthcheck" in services["api"]
    assert any("/health" in part for part in services["api"]["healthcheck"]["test"])


def test_api_and_jobs_are_confined_to_the_work_volume(compose):
    for name in ("ray-worker", "trainer", "api"):
        environment = compose["services"][name]["environment"]
        assert environment["MIDTRAIN_DATA_ROOTS"] == "/work", name
        assert environment["MIDTRAIN_RUNS"] == "/work/runs", name
        assert environment["MIDTRAIN_STATE"].startswith("/work/runs/"), name


def test_workers_scale_and_the_api_waits_for_a_healthy_head(compose):
    services = compose["services"]
    worker = services["ray-worker"]
    assert "container_name" not in worker and "ports" not in worker  # --scale ray-worker=N works
    api = services["api"]
    assert api["depends_on"]["ray-head"]["condition"] == "service_healthy"
    assert api["healthcheck"]["test"][0] == "CMD" and "http://127.0.0.1:8000/health" in api["healthcheck"]["test"]


def test_every_service_shares_the_work_volume(compose):
    for service in compose["services"].values():
        assert "midtrain-work:/work" in service["volumes"]


def test_ray_token_auth_is_on_everywhere(compose):
    for name, service in compose["services"].items():
        environment = service["environment"]
        assert environment["RAY_AUTH_MODE"] == "token", name
        assert environment["RAY_AUTH_TOKEN_PATH"].startswith("/work/"), name


def test_dockerfile_installs_the_project_from_pyproject():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert "ARG TORCH_INDEX=" in dockerfile and '--extra-index-url "$TORCH_INDEX"' in dockerfile
    assert "pyproject.toml" in dockerfile and "pip install --no-deps -e ." in dockerfile
    assert "\nUSER midtrain" in dockerfile  # services do not run as root
    assert "ENV MIDTRAIN_DATA_ROOTS=/work MIDTRAIN_RUNS=/work/runs" in dockerfile
