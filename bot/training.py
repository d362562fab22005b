"""Training the Rasa model, and knowing when it is needed.

A model is named after a fingerprint of everything that shapes it (``config.yml``
and the training data under ``nlu_data/``), so "is a retrain needed?" is a file
lookup that does not even import Rasa.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

logger = logging.getLogger(__name__)

MODEL_SUFFIX = ".tar.gz"

CONFIG = "config.yml"
DATA_DIR = "nlu_data"
DOMAIN = "nlu_data/domain.yml"
# Training data lives in these folders of nlu_data/; held-out evaluation data
# (nlu_data/test/) is never trained on and does not change the fingerprint.
TRAINING_DIRS = ("nlu", "rules", "stories")
FINGERPRINTED = ("domain.yml", "jieba", *TRAINING_DIRS)


def fingerprint(root: Path) -> str:
    """A short hash of the config and every training file, by path and content."""
    digest = hashlib.sha256()
    files = [root / CONFIG]
    for name in FINGERPRINTED:
        path = root / DATA_DIR / name
        files.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
    for path in files:
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()[:12]


def model_name(root: Path) -> str:
    return f"kefu-{fingerprint(root)}"


def current_model(root: Path, model_dir: Path) -> Path:
    return model_dir / f"{model_name(root)}{MODEL_SUFFIX}"


def train(root: Path, model_dir: Path, if_needed: bool = False) -> Path:
    """Train a model from `root`'s config and data into `model_dir`; return its path."""
    target = current_model(root, model_dir)
    if if_needed and target.is_file():
        logger.info("model %s is up to date with config.yml and nlu_data/", target.name)
        return target
    import rasa.model_training

    data = [str(root / DATA_DIR / d) for d in TRAINING_DIRS if (root / DATA_DIR / d).is_dir()]
    started = time.monotonic()
    logger.info("training %s from %s", target.name, ", ".join(data))
    result = rasa.model_training.train(
        domain=str(root / DOMAIN),
        config=str(root / CONFIG),
        training_files=data,
        output=str(model_dir),
        fixed_model_name=target.name.removesuffix(MODEL_SUFFIX),
        force_training=True,
    )
    if result.code != 0 or not result.model:
        raise RuntimeError(f"training failed (code {result.code})")
    logger.info("trained %s in %.1f s", target.name, time.monotonic() - started)
    return Path(result.model)
