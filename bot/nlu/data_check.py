"""`kefu data validate`: Rasa's validator on this project's files, and our own rules.

Rasa's `rasa data validate` checks the domain, stories, rules, forms and slot
mappings, but not what matters most for a classifier trained on hand-written
examples: the same sentence twice (after punctuation, spaces and case), one
sentence under two intents (the model cannot learn both), and held-out
sentences that are also trained on (they would flatter the evaluation). The
tests hold the data to the same rules (tests/test_nlu_data.py).
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from bot.channels.menu import Menu
from bot.content.knowledge import KnowledgeBase, KnowledgeError
from bot.nlu import catalogue
from bot.training import CONFIG, DATA_DIR, DOMAIN, TRAINING_DIRS

HELD_OUT = "nlu_data/test/nlu.yml"
MENU = "nlu_data/menu.yml"
KNOWLEDGE = "nlu_data/knowledge.yml"
PUNCT = re.compile(r"[\s,.!?~，。！？、～…·:：;；\"'“”‘’()（）\-]+")


def key(text: str) -> str:
    """Equal after normalising punctuation, spaces and letter case."""
    return PUNCT.sub("", text).lower()


@dataclass(frozen=True)
class Finding:
    check: str  # duplicate, conflict, held_out_overlap, domain, catalogue, menu, rasa
    message: str


def data_findings(training: Any, held_out: Any | None, domain_intents: list[str]) -> list[Finding]:
    """This project's rules over loaded Rasa `TrainingData` (training and held-out)."""
    findings: list[Finding] = []
    seen: dict[str, tuple[str, str]] = {}
    for message in training.intent_examples:
        text, intent = message.get("text"), message.get("intent")
        k = key(text)
        if k in seen:
            first_text, first_intent = seen[k]
            if first_intent == intent:
                findings.append(Finding("duplicate", f"{intent}: {text!r} repeats {first_text!r}"))
            else:
                findings.append(
                    Finding(
                        "conflict",
                        f"{text!r} is labelled {intent}, {first_text!r} {first_intent}",
                    )
                )
        else:
            seen[k] = (text, intent)
    if held_out is not None:
        for message in held_out.intent_examples:
            text = message.get("text")
            if key(text) in seen:
                trained_text, trained_intent = seen[key(text)]
                findings.append(
                    Finding(
                        "held_out_overlap",
                        f"{text!r} ({message.get('intent')}) is also trained on as "
                        f"{trained_text!r} ({trained_intent})",
                    )
                )
    with_examples = set(training.intents)
    for intent in sorted(set(domain_intents) - with_examples):
        findings.append(Finding("domain", f"intent {intent} is in the domain but has no examples"))
    for intent in sorted(with_examples - set(domain_intents)):
        findings.append(Finding("domain", f"intent {intent} has examples but is not in the domain"))
    return findings


def project_findings(root: Path) -> list[Finding]:
    import yaml
    from rasa.shared.nlu.training_data.loading import load_data

    training = load_data(str(root / DATA_DIR / "nlu"))
    held_out_path = root / HELD_OUT
    held_out = load_data(str(held_out_path)) if held_out_path.is_file() else None
    domain = yaml.safe_load((root / DOMAIN).read_text(encoding="utf-8"))
    findings = data_findings(training, held_out, list(domain.get("intents") or []))
    for path, text in catalogue.outputs(root).items():
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            findings.append(Finding("catalogue", f"{path} is stale: run `make catalogue`"))
    findings += menu_findings(root / MENU, root / KNOWLEDGE, set(domain.get("intents") or []))
    return findings


def menu_findings(menu: Path, knowledge: Path, intents: set[str]) -> list[Finding]:
    """Every menu button must name a knowledge entry or an intent of the domain."""
    if not menu.is_file():
        return []
    try:
        entries = KnowledgeBase.load(knowledge)
    except (OSError, KnowledgeError) as exc:
        return [Finding("menu", f"{menu} not checked: {knowledge}: {exc}")]
    _, problems = Menu.read(menu, entries, intents)
    return [Finding("menu", f"{menu}: {problem}") for problem in problems]


def rasa_findings(root: Path) -> list[Finding]:
    """What `rasa data validate` reports for config.yml, the domain and the training folders."""
    from rasa.shared.importers.importer import TrainingDataImporter
    from rasa.validator import Validator

    importer = TrainingDataImporter.load_from_config(
        str(root / CONFIG),
        str(root / DOMAIN),
        [str(root / DATA_DIR / d) for d in TRAINING_DIRS if (root / DATA_DIR / d).is_dir()],
    )
    validator = Validator.from_importer(importer)
    checks: list[tuple[str, Callable[[], bool]]] = [
        ("domain", validator.verify_domain_validity),
        ("intents", lambda: validator.verify_intents_in_stories(False)),
        ("repetition", lambda: validator.verify_example_repetition_in_intents(False)),
        ("utterances", lambda: validator.verify_utterances_in_stories(False)),
        ("stories", lambda: validator.verify_story_structure(False)),
        ("forms", validator.verify_forms_in_stories_rules),
        ("actions", validator.verify_actions_in_stories_rules),
        ("slot mappings", validator.verify_slot_mappings),
    ]
    findings: list[Finding] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name, check in checks:
            if not check():
                findings.append(Finding("rasa", f"Rasa's {name} check failed"))
    for warning in caught:
        # Libraries' deprecation noise is not the validator's: keep its own warnings.
        text = str(warning.message)
        if issubclass(warning.category, UserWarning) and not text.startswith(
            ("pkg_resources", "Deprecated", "Slot auto-fill")
        ):
            findings.append(Finding("rasa", text))
    return findings


def run(root: Path, out: TextIO = sys.stdout) -> int:
    """Print every finding; 0 when there is none, 1 otherwise."""
    findings = rasa_findings(root) + project_findings(root)
    for finding in findings:
        print(f"{finding.check}: {finding.message}", file=out)
    checked = "Rasa's validator, duplicates, conflicts, held-out overlap, domain, catalogue, menu"
    if findings:
        print(f"{len(findings)} problem(s) found ({checked})", file=out)
        return 1
    print(f"nlu_data/ is valid ({checked})", file=out)
    return 0
