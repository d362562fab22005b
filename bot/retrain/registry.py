"""Which trained model is serving: `models/serving.json`, written only by promotion.

Every process serves the model that file names (the newest model in the
folder when there is none yet), so a model trained and refused by the gate
sits beside the others without ever being loaded.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bot.engine.runtime import latest_model

SERVING = "serving.json"


@dataclass(frozen=True)
class ServingRecord:
    model: str  # file name in the model folder
    macro_f1: float | None  # on the held-out file, when it was promoted
    promoted_at: float


def read(model_dir: Path) -> ServingRecord | None:
    try:
        raw = json.loads((model_dir / SERVING).read_text(encoding="utf-8"))
        return ServingRecord(str(raw["model"]), raw.get("macro_f1"), float(raw["promoted_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write(model_dir: Path, model: Path, macro_f1: float | None) -> ServingRecord:
    record = ServingRecord(model.name, macro_f1, time.time())
    tmp = model_dir / f".{SERVING}.{os.getpid()}"
    tmp.write_text(json.dumps(asdict(record), indent=2), encoding="utf-8")
    tmp.replace(model_dir / SERVING)  # atomic: a reader sees the old file or the new
    return record


def serving_model(model_dir: Path) -> Path:
    """The promoted model, or the newest one when nothing was promoted yet."""
    record = read(model_dir)
    if record is not None and (model_dir / record.model).is_file():
        return model_dir / record.model
    return latest_model(model_dir)
