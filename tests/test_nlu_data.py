"""The training data is consistent, complete and kept apart from the held-out file."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest
import yaml
from rasa.shared.nlu.training_data.loading import load_data

from bot.nlu import catalogue
from tests.conftest import ROOT

DATA = ROOT / "nlu_data"
INTENTS = [
    "greet", "goodbye", "thank", "affirm", "deny", "ask_is_bot", "chitchat", "request_human",
    "order_status", "shipping_policy", "modify_order", "return_refund", "product_inquiry",
    "promotion", "payment_issue", "invoice", "account_issue", "membership_points",
    "business_hours", "complaint", "praise", "suggestion", "sensitive_topic", "abuse",
    "out_of_scope",
]  # fmt: skip
PUNCT = re.compile(r"[\s,.!?~，。！？、～…·:：;；\"'“”‘’()（）\-]+")


def key(text: str) -> str:
    """Equal after normalising punctuation, spaces and letter case."""
    return PUNCT.sub("", text).lower()


@pytest.fixture(scope="module")
def training():
    return load_data(str(DATA / "nlu"))


@pytest.fixture(scope="module")
def held_out():
    return load_data(str(DATA / "test" / "nlu.yml"))


def test_domain_lists_exactly_the_intents_with_examples(training):
    domain = yaml.safe_load((DATA / "domain.yml").read_text(encoding="utf-8"))
    assert domain["intents"] == INTENTS
    assert set(training.intents) == set(INTENTS)


def test_every_intent_has_at_least_40_examples(training):
    counts = defaultdict(int)
    for message in training.intent_examples:
        counts[message.get("intent")] += 1
    short = {i: counts[i] for i in INTENTS if counts[i] < 40}
    assert not short, f"intents with fewer than 40 examples: {short}"


def test_every_intent_has_a_one_line_definition():
    text = "".join(p.read_text(encoding="utf-8") for p in sorted((DATA / "nlu").glob("*.yml")))
    for intent in INTENTS:
        assert re.search(rf"  # {intent}: .+\n  - intent: {intent}\n", text), (
            f"{intent} has no definition"
        )


def test_no_duplicates_and_no_example_under_two_intents(training):
    seen: dict[str, str] = {}
    problems = []
    for message in training.intent_examples:
        k, intent = key(message.get("text")), message.get("intent")
        if k in seen:
            problems.append(f"{message.get('text')!r}: {seen[k]} and {intent}")
        seen[k] = intent
    assert not problems, "\n".join(problems)


def test_held_out_has_12_per_intent_and_shares_nothing_with_training(training, held_out):
    counts = defaultdict(int)
    for message in held_out.intent_examples:
        counts[message.get("intent")] += 1
    assert {i: n for i, n in counts.items() if n < 12} == {}
    assert set(counts) == set(INTENTS)
    trained = {key(m.get("text")) for m in training.intent_examples}
    leaked = [m.get("text") for m in held_out.intent_examples if key(m.get("text")) in trained]
    assert not leaked, f"held-out examples also in training: {leaked}"


def test_held_out_is_not_in_the_training_folders():
    from bot.training import TRAINING_DIRS

    assert "test" not in TRAINING_DIRS


def test_entity_annotations_parse_and_are_declared(training):
    domain = yaml.safe_load((DATA / "domain.yml").read_text(encoding="utf-8"))
    annotated = defaultdict(int)
    for message in training.intent_examples:
        for entity in message.get("entities") or []:
            text = message.get("text")
            assert text[entity["start"] : entity["end"]], entity
            annotated[entity["entity"]] += 1
    assert set(annotated) <= set(domain["entities"])
    assert (
        annotated["order_id"] >= 8 and annotated["product"] >= 10 and annotated["phone_number"] >= 3
    )


def test_generated_catalogue_files_are_current():
    for path, text in catalogue.outputs(ROOT).items():
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run `make catalogue`"


def test_catalogue_names_are_unique_and_become_synonyms(training):
    products = catalogue.load(ROOT / catalogue.CATALOGUE)
    assert len(products) >= 8
    for product in products:
        for alias in product.aliases:
            assert training.entity_synonyms.get(alias) == product.name


@pytest.mark.parametrize(
    ("entity", "text", "value"),
    [
        ("order_id", "订单202611250001234567", "202611250001234567"),
        ("order_id", "单号SF1234567890123呢", "SF1234567890123"),
        ("order_id", "JD0012345678901", "JD0012345678901"),
        ("phone_number", "电话13812345678", "13812345678"),
        ("phone_number", "+86 139 1234 5678", "+86 139 1234 5678"),
    ],
)
def test_entity_patterns_match_the_documented_formats(training, entity, text, value):
    patterns = [r["pattern"] for r in training.regex_features if r["name"] == entity]
    assert any(m.group(0) == value for p in patterns for m in [re.search(p, text)] if m)


@pytest.mark.parametrize("text", ["123456789012", "电话1381234567", "订单12345678901234567890123"])
def test_phone_pattern_does_not_bite_into_other_numbers(training, text):
    phone = [r["pattern"] for r in training.regex_features if r["name"] == "phone_number"]
    found = [m.group(0) for p in phone for m in [re.search(p, text)] if m]
    assert found == [] or all(len(re.sub(r"\D", "", f)) in (11, 13) for f in found)
    if text.startswith("订单"):
        assert found == []


def test_rasa_data_validate_has_no_warnings(tmp_path):
    import warnings

    from rasa.shared.importers.importer import TrainingDataImporter
    from rasa.validator import Validator

    importer = TrainingDataImporter.load_from_config(
        str(ROOT / "config.yml"),
        str(DATA / "domain.yml"),
        [str(DATA / d) for d in ("nlu", "rules")],
    )
    validator = Validator.from_importer(importer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ok = all(
            [
                validator.verify_domain_validity(),
                validator.verify_intents_in_stories(False),
                validator.verify_example_repetition_in_intents(False),
                validator.verify_utterances_in_stories(False),
                validator.verify_story_structure(False),
                validator.verify_forms_in_stories_rules(),
                validator.verify_actions_in_stories_rules(),
                validator.verify_slot_mappings(),
            ]
        )
    # Library deprecation noise is not the validator's: keep the validator's own warnings.
    found = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    found = [m for m in found if not m.startswith(("pkg_resources", "Deprecated"))]
    assert ok and not found, found
