"""Progress of long work (training, evaluation, retraining) for the person waiting.

On a terminal, a progress bar (tqdm, which Rasa already brings) that shows the
step being worked on; anywhere else (a pipe, a CI log, the retrain job's child
process), one line per step in a fixed form that the retrain job parses to show
steps and percent on the review page:

    progress 3/9 22% training fold 1 of 5

The functions doing the work take a plain `Callable[[str], None]` ("a step
starts, called this"), so they do not depend on how it is shown.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

Step = Callable[[str], None]
LINE = re.compile(r"^progress (\d+)/(\d+) (\d+)% (.*)$")


@dataclass(frozen=True)
class StepLine:
    step: int
    total: int
    percent: int
    label: str


def parse_line(line: str) -> StepLine | None:
    """A progress line as printed off a terminal, or None for any other line."""
    match = LINE.match(line.strip())
    if match is None:
        return None
    step, total, percent, label = match.groups()
    return StepLine(int(step), int(total), int(percent), label)


class Progress:
    """`total` steps; call the object with each step's label as it starts.

    `percent` counts the steps finished (a step's line says it starts). A step
    beyond `total` raises the total rather than showing more than 100 %.
    """

    def __init__(
        self, total: int, what: str, out: TextIO | None = None, tty: bool | None = None
    ) -> None:
        self.out = out if out is not None else sys.stderr
        self.tty = self.out.isatty() if tty is None else tty
        self.total = max(total, 1)
        self.what = what
        self.started = 0
        self._bar: Any = None
        self._redirect: contextlib.ExitStack | None = None
        if self.tty:
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            # Log lines written meanwhile go above the bar instead of through it.
            self._redirect = contextlib.ExitStack()
            self._redirect.enter_context(logging_redirect_tqdm())
            self._bar = tqdm(
                total=self.total,
                desc=what,
                file=self.out,
                bar_format="{desc} {bar} {n_fmt}/{total_fmt} {percentage:3.0f}%{postfix} "
                "[{elapsed}]",
                leave=True,
                dynamic_ncols=True,
            )

    def __call__(self, label: str) -> None:
        done = self.started
        self.started += 1
        self.total = max(self.total, self.started)
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.n = done
            self._bar.set_postfix_str(label, refresh=False)
            self._bar.refresh()
            return
        percent = done * 100 // self.total
        print(f"progress {self.started}/{self.total} {percent}% {label}", file=self.out, flush=True)

    def note(self, text: str) -> None:
        """A line for the reader (on stdout), kept clear of the bar on a terminal."""
        if self._bar is not None:
            self._bar.write(text, file=sys.stdout)
        else:
            print(text, flush=True)

    def close(self, label: str = "done") -> None:
        """All steps finished."""
        if self._bar is not None:
            self._bar.n = self.total
            self._bar.set_postfix_str(label, refresh=False)
            self._bar.close()
            self._bar = None
            if self._redirect is not None:
                self._redirect.close()
            return
        print(f"progress {self.total}/{self.total} 100% {label}", file=self.out, flush=True)


TRAINING_HOOKS = "rasa.engine.training.hooks"
_COMPONENT = re.compile(r"(?:Finished training|Restored) component '([^']+)'")


class _ComponentSteps(logging.Handler):
    def __init__(self, step: Step) -> None:
        super().__init__(logging.INFO)
        self._step = step

    def emit(self, record: logging.LogRecord) -> None:
        match = _COMPONENT.search(record.getMessage())
        if match:
            self._step(f"trained {match.group(1)}")


@contextlib.contextmanager
def component_steps(step: Step | None) -> Iterator[None]:
    """Report each component Rasa trains (or restores from its cache) as a step.

    Rasa's training graph announces components through this logger; while the
    context runs, those lines go to `step` instead of the log.
    """
    if step is None:
        yield
        return
    hooks = logging.getLogger(TRAINING_HOOKS)
    handler = _ComponentSteps(step)
    level, propagate = hooks.level, hooks.propagate
    hooks.addHandler(handler)
    hooks.setLevel(logging.INFO)
    hooks.propagate = False
    try:
        yield
    finally:
        hooks.removeHandler(handler)
        hooks.setLevel(level)
        hooks.propagate = propagate


def training_components(config: dict[str, Any]) -> int:
    """How many components a training of `config` trains (pipeline and policies)."""
    return len(config.get("pipeline") or []) + len(config.get("policies") or [])
