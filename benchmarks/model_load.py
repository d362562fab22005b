"""How long the project's model takes to load, and the memory a bot process holds.

    python benchmarks/model_load.py [--model models/kefu-….tar.gz]

Loads the model (the newest in BOT_MODEL_DIR, default models/) in this fresh
process, as a bot process does at start, then parses a few customer messages,
some of which take the cascade's embedding path, and prints the load time, the
first parse, and the resident memory (VmRSS, and its peak) of the process.
Targets: load at most 3 s, resident memory at most 800 MB.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MESSAGES = (
    "你好",
    "我的快递到哪了",
    "你们家和隔壁那家比谁更便宜",
    "买了一周了还没拆，不想要了，运费谁出？",
    "在吗",
    "yyds",
)


def memory_mb() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MB."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            name, amount = line.split(":", 1)
            values[name] = int(amount.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    os.chdir(ROOT)
    started = time.monotonic()
    from bot.engine.runtime import RasaEngine, latest_model

    imported = time.monotonic() - started
    model = args.model or latest_model(Path(os.environ.get("BOT_MODEL_DIR") or ROOT / "models"))
    started = time.monotonic()
    engine = RasaEngine.load(model)
    load_seconds = time.monotonic() - started
    started = time.monotonic()
    engine.parse(MESSAGES[0])
    first_parse_ms = (time.monotonic() - started) * 1000
    paths = [engine.parse(text).get("nlu_path", "sparse") for text in MESSAGES]
    rss, peak = memory_mb()
    print(
        f"model {model.name}: import_s={imported:.1f} load_s={load_seconds:.2f} "
        f"first_parse_ms={first_parse_ms:.1f} rss_mb={rss:.0f} peak_rss_mb={peak:.0f} "
        f"(paths: {', '.join(paths)})",
        flush=True,
    )


if __name__ == "__main__":
    main()
