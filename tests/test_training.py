"""Retraining is needed exactly when the config or the training data change."""

from __future__ import annotations

import shutil

from bot.training import current_model, fingerprint
from tests.conftest import ROOT


def copy_project(tmp_path):
    shutil.copy(ROOT / "config.yml", tmp_path / "config.yml")
    shutil.copytree(ROOT / "nlu_data", tmp_path / "nlu_data")
    return tmp_path


def test_fingerprint_follows_config_and_data_only(tmp_path):
    root = copy_project(tmp_path)
    before = fingerprint(root)
    assert fingerprint(root) == before

    (root / "nlu_data" / "test").mkdir(exist_ok=True)
    (root / "nlu_data" / "test" / "more_held_out.yml").write_text("nlu: []\n")
    assert fingerprint(root) == before, "held-out data must not trigger a retrain"

    with (root / "nlu_data" / "nlu" / "basics.yml").open("a") as f:
        f.write("      - 哈喽亲\n")
    after_data = fingerprint(root)
    assert after_data != before

    with (root / "config.yml").open("a") as f:
        f.write("# tuned\n")
    assert fingerprint(root) != after_data


def test_current_model_is_the_one_make_trained(model_path):
    assert model_path == current_model(ROOT, model_path.parent)
    assert model_path.is_file()
