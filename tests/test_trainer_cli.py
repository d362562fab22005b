"""The trainers' commands: `data validate`, Rasa-style aliases, progress on long work."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from bot.cli import __doc__ as cli_doc
from bot.progress import Progress, component_steps, parse_line
from tests.conftest import ROOT
from tests.test_review import copy_project


def kefu(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_data_validate_passes_on_the_project_and_names_each_problem(tmp_path, model_path):
    assert kefu("data", "validate").returncode == 0
    project = copy_project(tmp_path / "p", model_path)
    held_out = project / "nlu_data/test/nlu.yml"
    leaked = next(
        line.strip()[2:]
        for line in held_out.read_text(encoding="utf-8").splitlines()
        if line.strip().startswith("- ") and "[" not in line and "intent" not in line
    )
    (project / "nlu_data/nlu/more.yml").write_text(
        'version: "3.1"\nnlu:\n  - intent: greet\n    examples: |\n'
        f"      - 你好！\n      - 太差劲了，我要投诉你们\n      - {leaked}\n",
        encoding="utf-8",
    )
    result = kefu("data", "validate", "--root", str(project), cwd=project)
    assert result.returncode == 1, result.stdout
    out = result.stdout
    lines = out.splitlines()
    # Files load in no fixed order: either copy may be named first.
    assert any(line.startswith("duplicate: greet:") and "'你好！'" in line for line in lines)
    conflict = "conflict: '太差劲了，我要投诉你们'"
    assert any(line.startswith(conflict) and "complaint" in line for line in lines)
    assert any(line.startswith(f"held_out_overlap: '{leaked}'") for line in lines)
    assert any(line.startswith("rasa: ") for line in lines)  # Rasa's validator ran too
    assert "problem(s) found" in out


def test_cli_lists_every_command_and_rasa_style_aliases():
    help_text = kefu("--help").stdout
    commands = ("serve", "run", "shell", "train", "reload", "evaluate", "data", "test", "users")
    for command in commands:
        assert command in help_text
        assert command in cli_doc  # the module's docstring lists them too
    assert "test nlu" in cli_doc and "data validate" in cli_doc
    assert kefu("test", "nlu", "--help").returncode == 0
    assert kefu("run", "--help").returncode == 0
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for command in ("kefu shell", "kefu data validate", "kefu run", "kefu test nlu", "kefu train"):
        assert command in readme


def test_progress_off_a_terminal_is_one_parseable_line_per_step():
    out = io.StringIO()
    progress = Progress(4, "evaluate", out=out)
    for label in ("training", "scoring", "fold 1", "fold 2"):
        progress(label)
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "progress 1/4 0% training"
    assert [parse_line(line).percent for line in lines] == [0, 25, 50, 75, 100]  # type: ignore[union-attr]
    assert parse_line("[1/3] training") is None


def test_component_steps_come_from_rasas_training_hooks():
    import logging

    seen: list[str] = []
    hooks = logging.getLogger("rasa.engine.training.hooks")
    with component_steps(seen.append):
        hooks.info("Starting to train component 'JiebaTokenizer'.")
        hooks.info("Finished training component 'JiebaTokenizer'.")
        hooks.info("Restored component 'CountVectorsFeaturizer' from cache.")
    hooks.info("Finished training component 'Other'.")
    assert seen == ["trained JiebaTokenizer", "trained CountVectorsFeaturizer"]


@pytest.mark.slow
def test_evaluate_shows_progress_as_lines_in_a_pipe_and_a_bar_on_a_terminal(tmp_path, model_path):
    project = copy_project(tmp_path / "p", model_path)
    env = {"BOT_MODEL_DIR": str(project / "models")}
    piped = kefu("test", "nlu", "--quick", "--root", str(project), cwd=project, **env)
    assert piped.returncode == 0, piped.stderr[-2000:]
    steps = [s for s in map(parse_line, piped.stderr.splitlines()) if s is not None]
    assert [(s.step, s.total, s.percent) for s in steps] == [(1, 2, 0), (2, 2, 50), (2, 2, 100)]
    assert (project / "reports/confusion.png").is_file()

    child = pexpect.spawn(
        sys.executable,
        ["-m", "bot", "evaluate", "--quick", "--root", str(project)],
        cwd=str(project),
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        encoding="utf-8",
        timeout=300,
        dimensions=(24, 120),
    )
    child.expect(pexpect.EOF)
    child.close()
    screen = str(child.before)
    assert child.exitstatus == 0, screen[-2000:]
    assert "evaluate" in screen and "2/2 100%" in screen and "█" in screen
    assert "progress 1/2" not in screen  # a bar, not lines
