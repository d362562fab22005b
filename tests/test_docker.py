"""The deployment files: the compose topology, and HAProxy's config checked by haproxy itself.

Docker cannot run here, so the compose file is parsed by `docker compose
config` (or docker-compose) and its topology checked; the HAProxy config is
checked by the real binary (`haproxy -c`) and its retry rule exercised
against two small servers on loopback.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web

from benchmarks.ha_local import HAPROXY_CFG, LoadBalancer
from tests.conftest import ROOT, free_port

COMPOSE = ROOT / "docker" / "compose.yml"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
# In CI `make test` installs Debian's haproxy; elsewhere these tests say what is missing.
needs_haproxy = pytest.mark.skipif(
    not Path(HAPROXY).exists() and not os.environ.get("CI"),
    reason="Debian's haproxy is not installed (make test installs it)",
)


def compose_command() -> list[str] | None:
    if shutil.which("docker") is None and shutil.which("docker-compose") is None:
        return None
    if shutil.which("docker") is not None:
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.fixture(scope="module")
def compose() -> dict:
    """The compose file as `docker compose config` resolves it (else as plain YAML)."""
    command = compose_command()
    if command is None:
        assert shutil.which("docker") is None, "docker is here but no compose to check the file"
        return yaml.safe_load(COMPOSE.read_text())
    result = subprocess.run(
        [*command, "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        env={**os.environ, "REDIS_PASSWORD": "compose-test", "BOT_ADMIN_TOKEN": "t"},
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_refuses_to_start_without_a_redis_password():
    command = compose_command()
    if command is None:
        pytest.skip("no docker compose here")
    env = {k: v for k, v in os.environ.items() if k != "REDIS_PASSWORD"}
    result = subprocess.run(
        [*command, "-f", str(COMPOSE), "config"], capture_output=True, text=True, env=env
    )
    assert result.returncode != 0 and "REDIS_PASSWORD" in result.stderr


def test_compose_has_master_replica_three_sentinels_replicated_bots_and_a_balancer(compose):
    services = compose["services"]
    master, replica = services["redis-master"], services["redis-replica"]
    for node in (master, replica):
        command = " ".join(node["command"])
        assert "--appendonly yes" in command and "--requirepass" in command
        assert node["healthcheck"]["test"] and node["volumes"]
    assert "--replicaof redis-master 6379" in " ".join(replica["command"])
    assert "--replicaof" not in " ".join(master["command"])

    sentinels = [name for name in services if name.startswith("sentinel-")]
    assert len(sentinels) == 3
    for name in sentinels:
        script = " ".join(services[name]["command"])
        assert "sentinel monitor kefu redis-master 6379 2" in script  # quorum: two of three
        assert "redis-sentinel" in script and services[name]["volumes"]

    bot = services["bot"]
    assert bot["deploy"]["replicas"] >= 2
    env = bot["environment"]
    assert env["REDIS_SENTINELS"].split(",") == [f"{s}:26379" for s in sentinels]
    assert env["REDIS_SENTINEL_MASTER"] == "kefu" and env["REDIS_PASSWORD"] == "compose-test"
    assert "REDIS_URL" not in env
    assert "ports" not in bot  # customers only through the balancer
    assert "readyz" in " ".join(bot["healthcheck"]["test"])
    assert (ROOT / bot["build"]["dockerfile"]).is_file()

    lb = services["lb"]
    assert lb["image"].startswith("haproxy:")
    mounted = [str(v if isinstance(v, str) else v["source"]) for v in lb["volumes"]]
    assert any(v.split(":")[0].endswith("docker/haproxy.cfg") for v in mounted)
    published = {int(p["published"] if isinstance(p, dict) else str(p).split(":")[0])
                 for p in lb["ports"]}  # fmt: skip
    assert 8080 in published


def test_haproxy_config_checks_readyz_and_limits_retries_to_safe_requests():
    text = HAPROXY_CFG.read_text()
    assert "http-check send meth GET uri /readyz" in text
    assert "timeout tunnel" in text  # websockets stay open once upgraded
    assert "http-request disable-l7-retry unless safe_method || message_path has_message_id" in text
    assert "server-template bot" in text and "resolvers docker" in text


@needs_haproxy
def test_haproxy_accepts_the_shipped_config_and_the_loopback_one(tmp_path):
    result = subprocess.run([HAPROXY, "-c", "-f", str(HAPROXY_CFG)], capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    balancer = LoadBalancer(tmp_path, [free_port(), free_port()])
    balancer.start()  # checks the rewritten config with `haproxy -c` first
    balancer.stop()


@needs_haproxy
async def test_balancer_retries_messages_with_an_id_and_reads_never_other_writes(tmp_path):
    """Each server drops the connection the first time it sees a request: only safe ones recover."""
    seen: set[str] = set()

    async def flaky(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        key = request.method + request.path + body.decode()
        if key not in seen:
            seen.add(key)
            assert request.transport is not None
            request.transport.close()  # died mid-request: no answer at all
            await asyncio.sleep(1)
        return web.json_response({"ok": True})

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"status": "ready"})

    app = web.Application()
    app.router.add_get("/readyz", ready)
    app.router.add_route("*", "/{tail:.*}", flaky)
    runner = web.AppRunner(app)
    await runner.setup()
    ports = [free_port(), free_port()]
    for port in ports:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    balancer = LoadBalancer(tmp_path, ports)
    await asyncio.to_thread(balancer.start)
    try:
        connector = aiohttp.TCPConnector(force_close=True)  # one connection per request
        async with aiohttp.ClientSession(balancer.url, connector=connector) as session:

            async def status(method: str, path: str, body: dict | None = None) -> int:
                async with session.request(method, path, json=body) as resp:
                    return resp.status

            assert await status("POST", "/webhooks/rest/webhook",
                                {"sender": "a", "message": "hi", "message_id": "m-1"}) == 200
            assert await status("POST", "/webchat/api/messages",
                                {"text": "hi", "message_id": "m-2"}) == 200
            assert await status("GET", "/webchat/api/history?session=x") == 200
            # Not safe to send twice: the replica may have acted on it.
            assert await status("POST", "/webhooks/rest/webhook",
                                {"sender": "a", "message": "no id"}) == 502
            assert await status("POST", "/console/api/conversations/a/claim", {}) == 502
    finally:
        balancer.stop()
        await runner.cleanup()
