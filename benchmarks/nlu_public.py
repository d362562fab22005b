"""The project's NLU pipeline on public Chinese intent benchmarks.

    python benchmarks/nlu_public.py                      # every set in ../shared/benchmarks
    python benchmarks/nlu_public.py smp2017_ecdt --config config.yml

Trains the exact pipeline of `config.yml` (NLU part) on a set's train split and
prints, on its dev split: accuracy and macro-F1 of what the bot acts on (a
message sent to `nlu_fallback` counts as a miss: for the customer it is one),
the classifier's own top-1 accuracy beside it, training seconds, median and
p99 parse milliseconds, the share of messages decided by each path of the
cascade (n-grams alone, or with the sentence embedding), and the model's load
time and the process's resident memory once loaded. Parse times are given as
wall-clock time and as the parsing thread's own CPU time: on a machine shared
with other work the first includes waiting for a core, the second does not.

Parses run one at a time, as a customer's message would, after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

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


def resident_mb() -> float:
    """The process's resident memory now (VmRSS), in MB; the peak where /proc is absent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
        started = time.monotonic()
        engine = RasaEngine.load(Path(model))
        load_seconds = time.monotonic() - started
        for text, _ in dev_rows[:5]:
            engine.parse(text + "。")
        acted, top, timings, cpu, paths, fallbacks = [], [], [], [], [], 0
        for text, _ in dev_rows:
            t0, c0 = time.perf_counter(), time.thread_time()
            parsed = engine.parse(text)
            timings.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
            fallbacks += parsed["intent"]["name"] == "nlu_fallback"
            acted.append(parsed["intent"]["name"])
            real = [r for r in parsed.get("intent_ranking", []) if r["name"] != "nlu_fallback"]
            top.append(real[0]["name"] if real else parsed["intent"]["name"])
            paths.append(parsed.get("nlu_path", "sparse"))
        rss = resident_mb()
    gold = [intent for _, intent in dev_rows]
    ms = np.array(timings) * 1000
    cpu_ms = np.array(cpu) * 1000
    return {
        "train_examples": len(train_rows),
        "dev_examples": len(gold),
        "accuracy": sum(p == g for p, g in zip(acted, gold, strict=True)) / len(gold),
        "macro_f1": macro_f1(gold, acted),
        "top1_accuracy": sum(p == g for p, g in zip(top, gold, strict=True)) / len(gold),
        "train_seconds": train_seconds,
        "median_parse_ms": statistics.median(timings) * 1000,
        "p99_parse_ms": float(np.percentile(ms, 99)),
        "median_cpu_ms": float(np.median(cpu_ms)),
        "p99_cpu_ms": float(np.percentile(cpu_ms, 99)),
        "dense_share": paths.count("dense") / len(paths),
        "fallback_share": fallbacks / len(gold),
        "load_seconds": load_seconds,
        "rss_mb": rss,
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
            f"(fallback counted as a miss: {result['fallback_share'] * 100:.1f}% fell back; "
            f"classifier top-1 {result['top1_accuracy'] * 100:.1f}) "
            f"train_s={result['train_seconds']:.1f} "
            f"parse_ms median={result['median_parse_ms']:.1f} p99={result['p99_parse_ms']:.1f} "
            f"(cpu median={result['median_cpu_ms']:.1f} p99={result['p99_cpu_ms']:.1f}) "
            f"embedded={result['dense_share'] * 100:.0f}% "
            f"load_s={result['load_seconds']:.2f} rss_mb={result['rss_mb']:.0f} "
            f"(train {result['train_examples']}, dev {result['dev_examples']})",
            flush=True,
        )


if __name__ == "__main__":
    main()
