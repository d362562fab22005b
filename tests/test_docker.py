"""The compose file parses, and says what the deployment needs."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.conftest import ROOT

COMPOSE = ROOT / "docker" / "compose.yml"


def compose_command() -> list[str] | None:
    if shutil.which("docker") is None:
        return None
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
    if probe.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker client on this machine")
def test_docker_compose_config_parses():
    command = compose_command()
    assert command is not None, "docker is here but neither `docker compose` nor docker-compose is"
    result = subprocess.run(
        [*command, "-f", str(COMPOSE), "config"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "redis" in result.stdout and "bot" in result.stdout


def test_compose_runs_bot_and_durable_redis_with_health_checks():
    spec = yaml.safe_load(COMPOSE.read_text())
    redis, bot = spec["services"]["redis"], spec["services"]["bot"]
    assert "--appendonly" in redis["command"] and "yes" in redis["command"]
    assert redis["healthcheck"]["test"]
    assert bot["depends_on"]["redis"]["condition"] == "service_healthy"
    assert bot["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert "readyz" in " ".join(bot["healthcheck"]["test"])
    assert (ROOT / bot["build"]["dockerfile"]).is_file()


def test_dockerfile_runs_as_non_root_on_python_310():
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.10-slim" in text
    assert "\nUSER kefu\n" in text
    assert "python -m bot train" in text
