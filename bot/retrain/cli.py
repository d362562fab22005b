"""`python -m bot train` and `python -m bot reload`: train, gate, tell the running bots."""

from __future__ import annotations

import time
from pathlib import Path

import redis as redis_sync
import yaml

from bot.events import model_promoted
from bot.progress import Progress, component_steps, training_components
from bot.redis_connection import connect_sync
from bot.redis_keys import Keys
from bot.retrain import registry
from bot.retrain.gate import gate
from bot.settings import Settings
from bot.training import current_model, train


def step(text: str) -> None:
    print(text, flush=True)


def run_train(root: Path, settings: Settings, if_needed: bool, use_gate: bool = True) -> int:
    model_dir = settings.model_dir.resolve()
    started = time.monotonic()
    target = current_model(root, model_dir)
    needed = not (if_needed and target.is_file())
    config = yaml.safe_load((root / "config.yml").read_text(encoding="utf-8")) or {}
    # Steps: training (one per component trained), the gate, the promotion.
    total = (1 + training_components(config) if needed else 1) + (2 if use_gate else 0)
    progress = Progress(total, "train")
    step = progress.note
    if not needed:
        progress("model up to date")
        step(f"[1/3] {target.name} is up to date with config.yml and nlu_data/")
        model = target
    else:
        progress(f"training {target.name}")
        step(f"[1/3] training {target.name} from {root / 'nlu_data'} …")
        with component_steps(progress):
            model = train(root, model_dir)
        step(f"      trained in {time.monotonic() - started:.1f} s")
    if not use_gate:
        progress.close("trained")
        print(model)
        return 0
    progress("scoring on the held-out file")
    step("[2/3] scoring it on the held-out file (nlu_data/test/nlu.yml) …")
    result = gate(root, model_dir, model)
    step(f"      {result.reason} ({result.seconds:.1f} s)")
    progress("promoting" if result.promoted else "not promoted")
    if not result.promoted:
        progress.close("not promoted")
        step("[3/3] not promoted: the serving model stays (reports/gate.json says why)")
        return 3
    if result.reason == "already serving":
        progress.close("serving")
        step(f"[3/3] {model.name} is serving")
        return 0
    heard = announce(settings, model.name)
    progress.close("promoted")
    step(f"[3/3] promoted {model.name}; " + heard)
    print(model)
    return 0


def announce(settings: Settings, model: str) -> str:
    """Tell every running bot process to switch to the promoted model."""
    client = connect_sync(settings)
    try:
        heard = client.publish(Keys(settings.key_prefix).events, model_promoted(model))
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
