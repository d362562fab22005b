"""The production topology on one machine, on loopback ports: for tests and benchmarks/chaos.py.

A Redis master and a replica (append-only files, as in docker/compose.yml),
three Redis Sentinels watching them, bot processes pointed at the Sentinels,
and HAProxy in front with docker/haproxy.cfg (its servers rewritten to the
bots' loopback ports). Every process is started here, listens on 127.0.0.1
only, and is killed by `stop()`; every wait is bounded.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import redis as redis_sync

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.ports import free_port  # noqa: E402

HAPROXY_CFG = ROOT / "docker" / "haproxy.cfg"
SERVICE = "kefu"
# Sentinel calls the master down after this long without an answer; the
# compose file uses 5 s (a network can hiccup), one machine can afford 1 s.
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 4000


def sentinel_binary() -> list[str]:
    """Debian's redis-sentinel, or redis-server in Sentinel mode (the same program)."""
    if shutil.which("redis-sentinel"):
        return ["redis-sentinel"]
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError("redis-server is needed (make test installs it)")
    return [server, "--sentinel"]


def wait_until(check, timeout: float, what: str, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
        except (redis_sync.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Process:
    """One child process, its output in a log file."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:  # the child keeps its own copy open
            self.proc = subprocess.Popen(
                self.argv, env=self.env, cwd=self.cwd, stdout=out, stderr=out,
                start_new_session=True,
            )  # fmt: skip

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, grace: float = 5) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill9()


@dataclass
class RedisHA:
    """Master, replica and three Sentinels on free loopback ports under `workdir`."""

    workdir: Path
    sentinels: int = 3
    nodes: dict[int, Process] = field(default_factory=dict)
    watchers: list[Process] = field(default_factory=list)
    sentinel_ports: list[int] = field(default_factory=list)

    def _redis(self, port: int, replica_of: int | None) -> Process:
        data = self.workdir / f"redis-{port}"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            shutil.which("redis-server") or "redis-server",
            "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
            "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
            "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip
        if replica_of is not None:
            argv += ["--replicaof", "127.0.0.1", str(replica_of)]
        return Process(f"redis-{port}", argv, self.workdir / f"redis-{port}.log")

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        master, replica = free_port(), free_port()
        self.nodes[master] = self._redis(master, None)
        self.nodes[master].start()
        wait_until(lambda: client(master).ping(), 10, "the Redis master")
        self.nodes[replica] = self._redis(replica, master)
        self.nodes[replica].start()
        wait_until(
            lambda: client(replica).info("replication").get("master_link_status") == "up",
            15,
            "the replica to sync",
        )
        # Sentinels learn the replica from the master's INFO and each other
        # through the master's hello channel: start them once the replica is in.
        for i in range(self.sentinels):
            port = free_port()
            conf = self.workdir / f"sentinel-{i}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.workdir}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {master} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            process = Process(
                f"sentinel-{i}", [*sentinel_binary(), str(conf)], self.workdir / f"sentinel-{i}.log"
            )
            process.start()
            self.watchers.append(process)
            self.sentinel_ports.append(port)
        wait_until(self._sentinels_agree, 30, "the Sentinels to find each other and the replica")

    def _sentinels_agree(self) -> bool:
        for port in self.sentinel_ports:
            state = client(port).sentinel_master(SERVICE)
            if state["num-other-sentinels"] < self.sentinels - 1 or state["num-slaves"] < 1:
                return False
        return True

    @property
    def sentinel_env(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def master_port(self) -> int:
        """The master as the Sentinels name it now."""
        for port in self.sentinel_ports:
            try:
                _, master = client(port).sentinel_get_master_addr_by_name(SERVICE)
                return int(master)
            except (redis_sync.RedisError, TypeError):
                continue
        raise RuntimeError("no Sentinel answers")

    def kill_master(self) -> int:
        port = self.master_port()
        self.nodes[port].kill9()
        return port

    def wait_failover(self, old: int, timeout: float = 30) -> int:
        """Wait until the Sentinels name a new master that says it is one; its port."""

        def promoted() -> int | None:
            port = self.master_port()
            if port != old and client(port).info("replication")["role"] == "master":
                return port
            return None

        return int(wait_until(promoted, timeout, "Sentinel to promote the replica", 0.1))

    def restart(self, port: int) -> None:
        """Start a killed node again on its port and files; Sentinel makes it a replica."""
        self.nodes[port].start()

    def stop(self) -> None:
        for process in [*self.watchers, *self.nodes.values()]:
            process.kill9()

    def memory_used(self) -> int:
        return int(client(self.master_port()).info("memory")["used_memory"])


def client(port: int) -> redis_sync.Redis:
    return redis_sync.Redis(
        host="127.0.0.1",
        port=port,
        decode_responses=True,
        socket_timeout=1,
        socket_connect_timeout=1,
        single_connection_client=True,
    )


@dataclass
class Bot:
    """One `python -m bot serve` process on a loopback port."""

    port: int
    env: dict[str, str]
    log: Path
    process: Process | None = None

    def start(self) -> None:
        env = {**os.environ, **self.env, "BOT_HOST": "127.0.0.1", "BOT_PORT": str(self.port)}
        self.process = Process(
            f"bot-{self.port}", [sys.executable, "-m", "bot", "serve"], self.log, env, ROOT
        )
        self.process.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/readyz", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = 180) -> None:
        def check() -> bool:
            if self.process is None or not self.process.alive:
                tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
                raise RuntimeError(f"bot on port {self.port} exited:\n{tail}")
            return self.ready()

        wait_until(check, timeout, f"the bot on port {self.port}", 0.25)


def haproxy_config(port: int, servers: list[int], stats_port: int) -> str:
    """docker/haproxy.cfg with loopback addresses instead of Docker's DNS."""
    text = HAPROXY_CFG.read_text()
    text = re.sub(r"\nresolvers docker\n(?:    .*\n)+", "\n", text)
    text = text.replace("    bind :8080\n", f"    bind 127.0.0.1:{port}\n")
    text = text.replace("    bind :8405\n", f"    bind 127.0.0.1:{stats_port}\n")
    lines = "".join(f"    server bot{i} 127.0.0.1:{p} check\n" for i, p in enumerate(servers))
    text, count = re.subn(r"    server-template .*\n", lines, text)
    if count != 1:
        raise RuntimeError("docker/haproxy.cfg has no server-template line to rewrite")
    return text


@dataclass
class LoadBalancer:
    """HAProxy with the shipped configuration in front of `servers`."""

    workdir: Path
    servers: list[int]
    port: int = field(default_factory=free_port)
    stats_port: int = field(default_factory=free_port)
    process: Process | None = None

    def start(self) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        config = self.workdir / "haproxy.cfg"
        config.write_text(haproxy_config(self.port, self.servers, self.stats_port))
        check = subprocess.run([binary, "-c", "-q", "-f", str(config)], capture_output=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refuses the generated config: {check.stderr.decode()}")
        self.process = Process("haproxy", [binary, "-db", "-f", str(config)],
                               self.workdir / "haproxy.log")  # fmt: skip
        self.process.start()

        def up() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.stats_port}/healthz", timeout=1):
                return True

        wait_until(up, 10, "haproxy")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill9()
