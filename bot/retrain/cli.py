"""`python -m bot train` and `python -m bot reload`: train, gate, tell the running bots."""

from __future__ import annotations

import json
import time
from pathlib import Path

import redis as redis_sync

from bot.redis_connection import connect_sync
from bot.redis_keys import Keys
from bot.retrain import registry
from bot.retrain.gate import gate
from bot.retrain.reload import PROMOTED
from bot.settings import Settings
from bot.training import current_model, train


def step(text: str) -> None:
    print(text, flush=True)


def run_train(root: Path, settings: Settings, if_needed: bool, use_gate: bool = True) -> int:
    model_dir = settings.model_dir.resolve()
    started = time.monotonic()
    target = current_model(root, model_dir)
    if if_needed and target.is_file():
        step(f"[1/3] {target.name} is up to date with config.yml and nlu_data/")
        model = target
    else:
        step(f"[1/3] training {target.name} from {root / 'nlu_data'} …")
        model = train(root, model_dir)
        step(f"      trained in {time.monotonic() - started:.1f} s")
    if not use_gate:
        print(model)
        return 0
    step("[2/3] scoring it on the held-out file (nlu_data/test/nlu.yml) …")
    result = gate(root, model_dir, model)
    step(f"      {result.reason} ({result.seconds:.1f} s)")
    if not result.promoted:
        step("[3/3] not promoted: the serving model stays (reports/gate.json says why)")
        return 3
    if result.reason == "already serving":
        step(f"[3/3] {model.name} is serving")
        return 0
    step(f"[3/3] promoted {model.name}; " + announce(settings, model.name))
    print(model)
    return 0


def announce(settings: Settings, model: str) -> str:
    """Tell every running bot process to switch to the promoted model."""
    client = connect_sync(settings)
    event = {"type": PROMOTED, "conversation": "", "model": model}
    try:
        heard = client.publish(Keys(settings.key_prefix).events, json.dumps(event))
    except redis_sync.RedisError as exc:
        return f"could not tell running bots ({exc}); they serve it after a restart"
    finally:
        client.close()
    return f"{heard} running bot process(es) told to switch"


def run_reload(settings: Settings) -> int:
    record = registry.read(settings.model_dir.resolve())
    if record is None:
        print("no promoted model yet (models/serving.json); run `python -m bot train`")
        return 1
    print(f"{record.model}: " + announce(settings, record.model))
    return 0
