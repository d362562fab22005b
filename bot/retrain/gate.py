"""The promotion gate: a new model serves only if it is not worse than the serving one.

Both are scored on the held-out file (`nlu_data/test/nlu.yml`, never trained
on); the candidate is promoted when its macro-F1 is at most `MAX_DROP` below
the serving model's. Otherwise it stays in the model folder, unused, and the
report says why.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bot.evaluation import evaluate_model, load_examples
from bot.retrain import registry

logger = logging.getLogger(__name__)

MAX_DROP = 0.01  # one point of macro-F1
HELD_OUT = Path("nlu_data/test/nlu.yml")
REPORT = Path("reports/gate.json")


@dataclass(frozen=True)
class GateResult:
    candidate: str
    candidate_f1: float
    serving: str | None
    serving_f1: float | None
    promoted: bool
    reason: str
    seconds: float


def score(model: Path, root: Path) -> float:
    """Macro-F1 (with the fallback threshold) of `model` on the held-out file."""
    _, report = evaluate_model(model, load_examples(root / HELD_OUT))
    return float(report["with_fallback"]["macro avg"]["f1-score"])


def decide(candidate_f1: float, serving_f1: float | None) -> tuple[bool, str]:
    if serving_f1 is None:
        return True, "no model was serving"
    if candidate_f1 >= serving_f1 - MAX_DROP:
        return True, f"macro-F1 {candidate_f1:.3f} vs serving {serving_f1:.3f}: within one point"
    return False, (
        f"macro-F1 {candidate_f1:.3f} is more than one point below the serving model's "
        f"{serving_f1:.3f}; kept aside"
    )


def gate(root: Path, model_dir: Path, candidate: Path) -> GateResult:
    """Score `candidate`, compare, promote it if it passes; write reports/gate.json."""
    started = time.monotonic()
    record = registry.read(model_dir)
    serving: Path | None = None
    serving_f1: float | None = None
    if record is not None and (model_dir / record.model).is_file():
        serving, serving_f1 = model_dir / record.model, record.macro_f1
    if serving is not None and serving.name == candidate.name:
        return GateResult(candidate.name, serving_f1 or 0.0, serving.name, serving_f1, True,
                          "already serving", time.monotonic() - started)  # fmt: skip
    if serving is not None and serving_f1 is None:
        serving_f1 = score(serving, root)
    candidate_f1 = score(candidate, root)
    promoted, reason = decide(candidate_f1, serving_f1)
    if promoted:
        registry.write(model_dir, candidate, candidate_f1)
    result = GateResult(
        candidate.name,
        candidate_f1,
        serving.name if serving else None,
        serving_f1,
        promoted,
        reason,
        time.monotonic() - started,
    )
    report = root / REPORT
    report.parent.mkdir(exist_ok=True)
    report.write_text(json.dumps(asdict(result), indent=2), encoding="utf-8")
    logger.info("gate: %s %s (%s)", candidate.name, "promoted" if promoted else "refused", reason)
    return result
