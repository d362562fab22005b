"""Make sure Redis answers at REDIS_URL; start a local one under var/redis if not.

Run by `make run` and `make test` with the project's venv Python.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bot.settings import Settings

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", ""}
VAR = Path("var/redis")


def answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def find_or_install_server() -> str:
    binary = shutil.which("redis-server")
    if binary:
        return binary
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("redis-server not found: installing Debian's redis-server package")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "redis-server"],
            check=True,
            env=env,
        )
        binary = shutil.which("redis-server")
        if binary:
            return binary
    sys.exit(
        "redis-server is not installed and this user cannot install it.\n"
        "Install it with:  sudo apt-get install redis-server\n"
        "or point REDIS_URL at a running Redis."
    )


def main() -> None:
    settings = Settings.from_env()
    url = settings.redis_url
    if answers(url):
        print(f"Redis answers at {url}")
        return
    parsed = urlparse(url)
    host, port = parsed.hostname or "localhost", parsed.port or 6379
    if host not in LOCAL_HOSTS:
        sys.exit(f"Redis does not answer at {url}, and it is not on this machine: start it there.")
    binary = find_or_install_server()
    VAR.mkdir(parents=True, exist_ok=True)
    args = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "-::1",
        "--appendonly",
        "yes",
        # Every acknowledged write on disk: an answered message is never forgotten.
        "--appendfsync",
        "always",
        "--dir",
        str(VAR.resolve()),
        "--logfile",
        str((VAR / "redis.log").resolve()),
        "--pidfile",
        str((VAR / "redis.pid").resolve()),
        "--daemonize",
        "yes",
    ]
    if parsed.password:
        args += ["--requirepass", parsed.password]
    print(f"starting {binary} on port {port} (appendonly, files under {VAR}/)")
    subprocess.run(args, check=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if answers(url):
            print(f"Redis answers at {url}")
            return
        time.sleep(0.2)
    sys.exit(f"started redis-server but it does not answer at {url}; see {VAR}/redis.log")


if __name__ == "__main__":
    main()
