"""Shared fixtures: a real Redis, a real trained model (trained once per session), real HTTP."""

from __future__ import annotations

import os

# Before Rasa is imported (below): it sets TF_CPP_MIN_LOG_LEVEL itself when it is
# unset, and the bot processes the tests start inherit this environment.
os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis as redis_sync
from aiohttp.test_utils import TestClient
from playwright.async_api import async_playwright

from benchmarks.ports import free_port
from bot.app import create_app
from bot.engine.runtime import RasaEngine
from bot.settings import DEFAULT_REDIS_URL, Settings
from bot.training import train
from tests.helpers import Agent, Logins

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts"))

# Browser tests run in Debian's chromium; in CI (where make test installs it) never skipped.
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (make test installs it)",
)
ADMIN_TOKEN = "test-admin-token-0123456789"


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


@pytest.fixture(scope="session")
def model_dir() -> Path:
    return Path(os.environ.get("BOT_MODEL_DIR") or ROOT / "models").resolve()


@pytest.fixture(scope="session")
def model_path(model_dir: Path) -> Path:
    """The model for the current data; `make test` has trained it already."""
    return train(ROOT, model_dir, if_needed=True)


@pytest.fixture(scope="session")
def engine(model_path: Path) -> RasaEngine:
    return RasaEngine.load(model_path)


@pytest.fixture
def key_prefix(redis_url: str) -> Iterator[str]:
    """A fresh key prefix per test; its keys are deleted afterwards."""
    prefix = "kefutest" + uuid.uuid4().hex[:12]
    yield prefix
    client = redis_sync.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    except redis_sync.RedisError:
        pass
    finally:
        client.close()


@pytest.fixture
def settings(redis_url: str, key_prefix: str, model_dir: Path) -> Settings:
    return Settings.from_env(
        {
            "REDIS_URL": redis_url,
            "BOT_PORT": str(free_port()),
            "BOT_ADMIN_TOKEN": ADMIN_TOKEN,
            "BOT_KEY_PREFIX": key_prefix,
            "BOT_MODEL_DIR": str(model_dir),
            # Cheap hashing for the many apps tests start; the default cost is 12.
            "BOT_BCRYPT_ROUNDS": "4",
        },
        dotenv=None,
    )


@pytest.fixture
async def client(
    aiohttp_client, settings: Settings, engine: RasaEngine
) -> AsyncIterator[TestClient]:  # type: ignore[no-untyped-def]
    # The app serves on settings.port because the model's action endpoint points there.
    yield await aiohttp_client(create_app(settings, engine), server_kwargs={"port": settings.port})


@pytest.fixture
async def logins() -> AsyncIterator[Logins]:
    logins = Logins()
    yield logins
    await logins.close()


@pytest.fixture
def sign_in(client: TestClient, logins: Logins):  # type: ignore[no-untyped-def]
    """`await sign_in("agent1", "agent")`: an account on `client`'s app, signed in."""

    async def _sign_in(username: str, role: str = "agent") -> Agent:
        return await logins.sign_in(client, username, role)

    return _sign_in


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class RedisServer:
    """A private redis-server the test can stop and start again on the same port."""

    def __init__(self, workdir: Path, durable: bool = False) -> None:
        self.port = free_port()
        self.workdir = workdir
        # durable: an append-only file fsynced on every write, so a kill -9 loses
        # nothing Redis acknowledged.
        self.durable = durable
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed (make test installs it)"
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                str(self.workdir),
                *(
                    ["--appendonly", "yes", "--appendfsync", "always"]
                    if self.durable
                    else ["--appendonly", "no"]
                ),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis_sync.Redis(port=self.port, socket_timeout=0.5).ping():
                    return
            except redis_sync.RedisError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
async def browser():  # type: ignore[no-untyped-def]
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        await browser.close()
