"""docker-compose.yml: Debian's docker-compose accepts it, and it wires what DESIGN.md says."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_docker_compose_config_accepts_the_file():
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_services_and_their_wiring(compose):
    services = compose["services"]
    assert {"ray-head", "ray-worker", "trainer", "api"} <= set(services)
    assert "ray start --head" in " ".join(services["ray-head"]["command"])
    for name in ("ray-worker", "trainer"):
        assert "--address=ray-head:6379" in services[name]["command"]
    assert services["api"]["environment"]["RAY_ADDRESS"] == "ray-head:6379"
    assert services["api"]["command"][:2] == ["midtrain", "serve"]


def test_trainer_reserves_a_gpu_and_services_have_health_checks(compose):
    services = compose["services"]
    devices = services["trainer"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert "--num-gpus=1" in services["trainer"]["command"]
    assert "healthcheck" in services["ray-head"] and "healthcheck" in services["api"]
    assert any("/health" in part for part in services["api"]["healthcheck"]["test"])


def test_every_service_shares_the_work_volume(compose):
    for service in compose["services"].values():
        assert "midtrain-work:/work" in service["volumes"]


def test_ray_token_auth_is_on_everywhere(compose):
    for name, service in compose["services"].items():
        environment = service["environment"]
        assert environment["RAY_AUTH_MODE"] == "token", name
        assert environment["RAY_AUTH_TOKEN_PATH"].startswith("/work/"), name
