"""The project's NLU pipeline on public Chinese intent benchmarks.

    python benchmarks/nlu_public.py                      # every set in ../shared/benchmarks
    python benchmarks/nlu_public.py smp2017_ecdt --config config.yml

Trains the exact pipeline of `config.yml` (NLU part) on a set's train split and
prints accuracy, macro-F1, training seconds and median parse milliseconds on its
dev split. The fallback step is not counted against the classifier: the
reported intent is the top-ranked real intent; how many messages fell under
the fallback threshold is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_SETS = ROOT.parent / "shared" / "benchmarks"


def read_split(path: Path) -> list[tuple[str, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows.append((row["text"].strip(), row["intent"]))
    return rows


def to_rasa_yaml(rows: list[tuple[str, str]]) -> str:
    """Rasa NLU YAML; a text seen under two intents keeps its first (upstream quirk)."""
    by_intent: dict[str, list[str]] = {}
    seen: set[str] = set()
    for text, intent in rows:
        if not text or text in seen:
            continue
        seen.add(text)
        by_intent.setdefault(intent, []).append(text)
    lines = ['version: "3.1"', "nlu:"]
    for intent, texts in by_intent.items():
        lines += [f"  - intent: {intent}", "    examples: |"]
        lines += [f"      - {json.dumps(t, ensure_ascii=False)[1:-1]}" for t in texts]
    return "\n".join(lines) + "\n"


def macro_f1(gold: list[str], predicted: list[str]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(gold, predicted, average="macro", zero_division=0))


def run_set(folder: Path, config: Path) -> dict[str, float]:
    import logging

    from rasa.model_training import train_nlu

    from bot.engine.runtime import RasaEngine
    from bot.logs import configure

    configure("WARNING")
    logging.getLogger("rasa").setLevel(logging.ERROR)
    train_rows = read_split(folder / "train.jsonl")
    dev_rows = read_split(folder / "dev.jsonl")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "nlu.yml"
        data.write_text(to_rasa_yaml(train_rows), encoding="utf-8")
        started = time.monotonic()
        model = train_nlu(
            str(config), str(data), str(Path(tmp) / "models"), fixed_model_name="bench"
        )
        train_seconds = time.monotonic() - started
        assert model, "training failed"
        engine = RasaEngine.load(Path(model))
        predicted, timings, fallbacks = [], [], 0
        for text, _ in dev_rows:
            t0 = time.perf_counter()
            parsed = engine.parse(text, "bench")
            timings.append(time.perf_counter() - t0)
            fallbacks += parsed["intent"]["name"] == "nlu_fallback"
            real = [r for r in parsed.get("intent_ranking", []) if r["name"] != "nlu_fallback"]
            predicted.append(real[0]["name"] if real else parsed["intent"]["name"])
    gold = [intent for _, intent in dev_rows]
    accuracy = sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold)
    return {
        "train_examples": len(train_rows),
        "dev_examples": len(gold),
        "accuracy": accuracy,
        "macro_f1": macro_f1(gold, predicted),
        "train_seconds": train_seconds,
        "median_parse_ms": statistics.median(timings) * 1000,
        "below_fallback_threshold": fallbacks / len(gold),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sets", nargs="*", help="set folder names (default: all)")
    parser.add_argument("--root", type=Path, default=DEFAULT_SETS, help="folder holding the sets")
    parser.add_argument("--config", type=Path, default=ROOT / "config.yml")
    args = parser.parse_args()
    names = args.sets or sorted(
        p.name for p in args.root.iterdir() if (p / "train.jsonl").is_file()
    )
    os.chdir(ROOT)  # the pipeline's jieba dictionary path is relative to the project
    for name in names:
        result = run_set(args.root / name, args.config.resolve())
        print(
            f"{name}: accuracy={result['accuracy'] * 100:.1f} "
            f"macro_f1={result['macro_f1'] * 100:.1f} "
            f"train_s={result['train_seconds']:.1f} "
            f"median_parse_ms={result['median_parse_ms']:.1f} "
            f"below_fallback={result['below_fallback_threshold'] * 100:.1f}% "
            f"(train {result['train_examples']}, dev {result['dev_examples']})",
            flush=True,
        )


if __name__ == "__main__":
    main()
