"""With BOT_WORKERS > 1 every scrape of /metrics counts every worker's messages.

The workers share one port, so each scrape reaches one of them; in
prometheus-client's multiprocess mode any of them answers with the sum, so a
counter never jumps between scrapes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest
import redis as redis_sync

from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.slow

WORKERS = 2
MESSAGES = 8


def _get(url: str, data: bytes | None = None) -> tuple[int, str]:
    request = urllib.request.Request(
        url, data=data, headers={"Connection": "close", "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def test_counters_are_summed_over_workers_on_every_scrape(redis_url, model_path, tmp_path):
    port = free_port()
    prefix = "kefumetrics" + uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "BOT_HOST": "127.0.0.1",
        "BOT_PORT": str(port),
        "BOT_KEY_PREFIX": prefix,
        "BOT_MODEL_DIR": str(model_path.parent),
        "BOT_WORKERS": str(WORKERS),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    log = open(tmp_path / "bot.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        pids: set[int] = set()
        deadline = time.monotonic() + 180
        # Ready means every worker is: keep asking until two pids have said so.
        while len(pids) < WORKERS:
            assert proc.poll() is None, (tmp_path / "bot.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the workers did not become ready"
            status, body = _get(base + "/readyz")
            if status == 200:  # the ready one says who it is (another may answer /healthz)
                pids.add(json.loads(body)["pid"])
            else:
                time.sleep(0.5)
        for i in range(MESSAGES):
            body = json.dumps({"sender": f"m{i}", "message": "你好"}).encode()
            status, text = _get(base + "/webhooks/rest/webhook", body)
            assert status == 200, text
        seen = set()
        for _ in range(12):
            status, text = _get(base + "/metrics")
            assert status == 200
            match = re.search(
                r'^kefu_messages_total\{channel="rest",direction="in"\} (\S+)$', text, re.M
            )
            assert match, text[:500]
            seen.add(float(match.group(1)))
            assert "kefu_model_info{version=" in text
        assert seen == {float(MESSAGES)}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        client = redis_sync.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()
