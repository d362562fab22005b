"""`make evaluate`: the model on the held-out file, written to `reports/`.

Trains (if needed) on the training data only, parses every example of
``nlu_data/test/nlu.yml`` (never trained on), and writes:

- ``reports/intents.json``: per-intent precision, recall, F1 and support, with
  macro and weighted averages, for the classifier's top intent and for what
  the bot acts on (where a message under the fallback threshold counts as a
  miss);
- ``reports/confusion.png``: the confusion matrix;
- ``reports/confusions.json``: the worst confusions, with the messages;
- ``reports/entities.json``: entity precision and recall on annotated examples;
- ``reports/calibration.md`` and ``.png``: for each fallback threshold, how many
  messages are answered and how many of those are right, on the held-out file
  and on 5-fold cross-validation of the training data (messages each model
  never saw, closer to real traffic than a held-out file written alongside);
- ``reports/normalizer.json``: the same evaluation with the normaliser removed
  from the pipeline, to show what it changes;
- one summary line on standard output (and in ``reports/summary.txt``).
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.engine.runtime import RasaEngine
from bot.names import FALLBACK
from bot.nlu.clarification import load_readings, readings_to_offer
from bot.nlu.normalizer import normalize
from bot.training import train

HELD_OUT = Path("nlu_data/test/nlu.yml")
READINGS = Path("nlu_data/clarification.yml")
TEXT_KEY = "text"
REPORTS = Path("reports")
# Recall targets for the intents that decide whether the bot is honest and safe.
SAFETY_INTENTS = ("sensitive_topic", "abuse", "out_of_scope", "request_human", "ask_is_bot")
MACRO_F1_TARGET = 0.95
SAFETY_RECALL_TARGET = 0.97
# Of the messages the bot answers without asking, the share it must get right.
ANSWERED_RIGHT_TARGET = 0.97
CV_ACCURACY_TARGET = 0.90
# Intents whose answer asserts something: each gets its own threshold (config.yml),
# chosen from the per-intent table in reports/calibration.md.
ASSERTING_INTENTS = (
    "praise",
    "complaint",
    "ask_is_bot",
    "sensitive_topic",
    "abuse",
    "out_of_scope",
)


@dataclass(frozen=True)
class Example:
    text: str
    intent: str
    entities: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Prediction:
    intent: str  # what the bot acts on (nlu_fallback when unsure)
    top: str  # the classifier's best real intent
    confidence: float
    margin: float  # top confidence minus the runner-up's
    entities: tuple[tuple[str, str], ...]
    path: str = "sparse"  # which model of the cascade decided
    ranking: tuple[tuple[str, float], ...] = ()


def load_examples(path: Path) -> list[Example]:
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(path))
    examples = []
    for message in data.intent_examples:
        entities = tuple(
            sorted((e["entity"], normalize(str(e["value"]))) for e in message.get("entities") or [])
        )
        examples.append(Example(message.get("text"), message.get("intent"), entities))
    return examples


def predict(engine: Any, examples: list[Example]) -> list[Prediction]:
    predictions = []
    for example in examples:
        parsed = engine.parse(example.text)
        ranking = [r for r in parsed.get("intent_ranking") or [] if r["name"] != FALLBACK]
        top = ranking[0] if ranking else {"name": parsed["intent"]["name"], "confidence": 0.0}
        second = ranking[1]["confidence"] if len(ranking) > 1 else 0.0
        predictions.append(
            Prediction(
                intent=parsed["intent"]["name"],
                top=top["name"],
                confidence=float(top["confidence"]),
                margin=float(top["confidence"]) - float(second),
                entities=tuple(
                    sorted((e["entity"], str(e["value"])) for e in parsed.get("entities") or [])
                ),
                path=str(parsed.get("nlu_path") or "sparse"),
                ranking=tuple((r["name"], float(r["confidence"])) for r in ranking[:2]),
            )
        )
    return predictions


def intent_report(gold: list[str], predicted: list[str]) -> dict[str, Any]:
    from sklearn.metrics import classification_report

    labels = sorted(set(gold))
    report = classification_report(
        gold, predicted, labels=labels, output_dict=True, zero_division=0
    )
    report.pop("micro avg", None)
    report["accuracy"] = sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)
    return {
        k: (
            {m: round(float(v), 4) for m, v in row.items()}
            if isinstance(row, dict)
            else round(row, 4)
        )
        for k, row in report.items()
    }


def calibration(examples: list[Example], predictions: list[Prediction]) -> list[dict[str, float]]:
    rows = []
    for step in range(0, 19):
        threshold = round(0.05 * step, 2)
        answered = [
            (e, p) for e, p in zip(examples, predictions, strict=True) if p.confidence >= threshold
        ]
        right = sum(p.top == e.intent for e, p in answered)
        rows.append(
            {
                "threshold": threshold,
                "answered": len(answered) / len(examples),
                "accuracy_of_answered": right / len(answered) if answered else 1.0,
                "wrong_answers": (len(answered) - right) / len(examples),
            }
        )
    return rows


def entity_report(examples: list[Example], predictions: list[Prediction]) -> dict[str, Any]:
    scores: dict[str, Counter[str]] = {}
    for example, prediction in zip(examples, predictions, strict=True):
        gold, found = set(example.entities), set(prediction.entities)
        for entity, _ in gold | found:
            scores.setdefault(entity, Counter())
        for entity, value in found:
            scores[entity]["tp" if (entity, value) in gold else "fp"] += 1
        for entity, _ in gold - found:
            scores[entity]["fn"] += 1
    report = {}
    for entity, c in sorted(scores.items()):
        p = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0
        r = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0
        report[entity] = {
            "precision": round(p, 4),
            "recall": round(r, 4),
            "support": c["tp"] + c["fn"],
        }
    return report


def plot_confusion(gold: list[str], predicted: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    labels = sorted(set(gold) | set(predicted))
    matrix = confusion_matrix(gold, predicted, labels=labels)
    fig, ax = plt.subplots(figsize=(12, 11))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j]:
                color = "white" if matrix[i, j] > matrix.max() / 2 else "black"
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7, color=color)
    ax.set_title("Held-out intents: confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_calibration(rows: list[dict[str, float]], chosen: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["threshold"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(t, [r["answered"] for r in rows], marker="o", label="answered (share of messages)")
    ax.plot(t, [r["accuracy_of_answered"] for r in rows], marker="s", label="right among answered")
    ax.plot(
        t,
        [r["wrong_answers"] for r in rows],
        marker="^",
        label="answered wrongly (share of messages)",
    )
    ax.axvline(chosen, color="grey", linestyle="--", label=f"chosen threshold {chosen}")
    ax.set_xlabel("FallbackClassifier threshold")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fallback_config(config: Path) -> dict[str, Any]:
    pipeline = yaml.safe_load(config.read_text(encoding="utf-8"))["pipeline"]
    return dict(next(c for c in pipeline if c["name"].endswith("FallbackClassifier")))


def fallback_threshold(config: Path) -> float:
    return float(_fallback_config(config)["threshold"])


def intent_thresholds(config: Path) -> dict[str, float]:
    return {k: float(v) for k, v in (_fallback_config(config).get("thresholds") or {}).items()}


def intent_calibration(
    examples: list[Example], predictions: list[Prediction], intents: tuple[str, ...]
) -> str:
    """Per intent and threshold: how often acting on it is right, and how much of it is kept.

    For each intent whose answer asserts something: among messages the
    classifier gives that intent with at least the threshold, the share that
    truly are that intent (precision), and the share of that intent's messages
    acted on (recall), so its threshold can be read off.
    """
    lines = []
    for intent in intents:
        lines += [
            f"\n### {intent}\n",
            "| threshold | acted on | right among them | recall |",
            "| --- | --- | --- | --- |",
        ]
        support = sum(e.intent == intent for e in examples)
        for step in range(2, 19, 2):
            t = round(0.05 * step, 2)
            acted = [
                (e, p)
                for e, p in zip(examples, predictions, strict=True)
                if p.top == intent and p.confidence >= t
            ]
            right = sum(e.intent == intent for e, _ in acted)
            precision = right / len(acted) if acted else 1.0
            recall = right / support if support else 0.0
            lines.append(f"| {t:.2f} | {len(acted)} | {precision:.1%} | {recall:.1%} |")
    return "\n".join(lines) + "\n"


def asking_report(
    examples: list[Example], predictions: list[Prediction], readings: dict[str, str]
) -> dict[str, float]:
    """How often the bot asks instead of answering, and how right it is when it answers."""
    answered = [(e, p) for e, p in zip(examples, predictions, strict=True) if p.intent != FALLBACK]
    unsure = [p for p in predictions if p.intent == FALLBACK]
    two = [
        p
        for p in unsure
        if readings_to_offer([{"name": n, "confidence": c} for n, c in p.ranking], readings)
    ]
    return {
        "answered": len(answered) / len(examples),
        "right_among_answered": (
            sum(e.intent == p.intent for e, p in answered) / len(answered) if answered else 1.0
        ),
        "asked": len(unsure) / len(examples),
        "asked_two_readings": len(two) / len(examples),
        "embedded": sum(p.path == "dense" for p in predictions) / len(predictions),
    }


def evaluate_model(model: Path, examples: list[Example]) -> tuple[list[Prediction], dict[str, Any]]:
    engine = RasaEngine.load(model)
    predictions = predict(engine, examples)
    gold = [e.intent for e in examples]
    return predictions, {
        "classifier": intent_report(gold, [p.top for p in predictions]),
        "with_fallback": intent_report(gold, [p.intent for p in predictions]),
    }


def cross_validated(
    root: Path, folds: int = 5, seed: int = 0, progress: Callable[[str], None] = lambda _: None
) -> tuple[list[Example], list[Prediction]]:
    """Out-of-fold predictions for every training example."""
    import random

    from rasa.model_training import train_nlu
    from rasa.shared.nlu.training_data.loading import load_data
    from rasa.shared.nlu.training_data.training_data import TrainingData

    data = load_data(str(root / "nlu_data" / "nlu"))
    messages = list(data.intent_examples)
    random.Random(seed).shuffle(messages)
    examples: list[Example] = []
    predictions: list[Prediction] = []
    for fold in range(folds):
        progress(f"cross-validation: training fold {fold + 1} of {folds}")
        test = messages[fold::folds]
        train = [m for i, m in enumerate(messages) if i % folds != fold]
        with tempfile.TemporaryDirectory() as tmp:
            part = TrainingData(
                train,
                entity_synonyms=data.entity_synonyms,
                regex_features=data.regex_features,
                lookup_tables=data.lookup_tables,
            )
            (Path(tmp) / "nlu.yml").write_text(part.nlu_as_yaml(), encoding="utf-8")
            model = train_nlu(
                str(root / "config.yml"), str(Path(tmp) / "nlu.yml"), str(Path(tmp) / "m")
            )
            assert model, "cross-validation training failed"
            fold_examples = [Example(m.get(TEXT_KEY), m.get("intent"), ()) for m in test]
            examples += fold_examples
            predictions += predict(RasaEngine.load(Path(model)), fold_examples)
    return examples, predictions


def calibration_table(rows: list[dict[str, float]], threshold: float) -> str:
    table = [
        "| threshold | answered | right among answered | answered wrongly |",
        "| --- | --- | --- | --- |",
    ]
    table += [
        f"| {r['threshold']:.2f}{' (chosen)' if abs(r['threshold'] - threshold) < 1e-9 else ''} "
        f"| {r['answered']:.1%} | {r['accuracy_of_answered']:.1%} | {r['wrong_answers']:.1%} |"
        for r in rows
    ]
    return "\n".join(table) + "\n"


def without_normalizer(root: Path, workdir: Path) -> Path:
    """Train the same pipeline minus the normaliser, for comparison."""
    config = yaml.safe_load((root / "config.yml").read_text(encoding="utf-8"))
    config["pipeline"] = [
        c for c in config["pipeline"] if not c["name"].endswith("ChineseNormalizer")
    ]
    copy = workdir / "project"
    copy.mkdir()
    (copy / "config.yml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    (copy / "nlu_data").symlink_to((root / "nlu_data").resolve())
    return train(copy, workdir / "models")


def steps(compare_normalizer: bool, cross_validate: bool, folds: int = 5) -> int:
    """How many steps `run` reports: one per training, and the scoring."""
    return 2 + (folds if cross_validate else 0) + (1 if compare_normalizer else 0)


def run(
    root: Path,
    model_dir: Path,
    compare_normalizer: bool = True,
    cross_validate: bool = True,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Evaluate; `progress` is told of each step (one per training): see `steps`."""
    progress("training the model (if needed)")
    model = train(root, model_dir, if_needed=True)
    progress("scoring the held-out file")
    examples = load_examples(root / HELD_OUT)
    predictions, intents = evaluate_model(model, examples)
    reports = root / REPORTS
    reports.mkdir(exist_ok=True)
    gold = [e.intent for e in examples]

    (reports / "intents.json").write_text(
        json.dumps(intents, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    plot_confusion(gold, [p.intent for p in predictions], reports / "confusion.png")
    mistakes = Counter(
        (e.intent, p.intent)
        for e, p in zip(examples, predictions, strict=True)
        if e.intent != p.intent
    )
    worst = [
        {
            "true": t,
            "predicted": pr,
            "count": n,
            "messages": [
                e.text
                for e, p in zip(examples, predictions, strict=True)
                if (e.intent, p.intent) == (t, pr)
            ],
        }
        for (t, pr), n in mistakes.most_common(15)
    ]
    (reports / "confusions.json").write_text(
        json.dumps(worst, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    entities = entity_report(examples, predictions)
    (reports / "entities.json").write_text(
        json.dumps(entities, ensure_ascii=False, indent=2), encoding="utf-8"
    )

    threshold = fallback_threshold(root / "config.yml")
    rows = calibration(examples, predictions)
    asking = asking_report(examples, predictions, load_readings(root / READINGS))
    text = (
        "# Fallback thresholds\n\n"
        "A message whose best intent is less sure than its threshold is not acted on:\n"
        "the bot asks which of two readings was meant, or says it is not sure.\n\n"
        "## Held-out file\n\n" + calibration_table(rows, threshold)
    )
    text += (
        "\n## Per intent, on the held-out file (intents whose answer asserts something)\n"
        + intent_calibration(examples, predictions, ASSERTING_INTENTS)
    )
    cv_accuracy = None
    if cross_validate:
        cv_examples, cv_predictions = cross_validated(root, progress=progress)
        cv_rows = calibration(cv_examples, cv_predictions)
        cv_accuracy = cv_rows[0]["accuracy_of_answered"]
        text += "\n## 5-fold cross-validation of the training data\n\n"
        text += calibration_table(cv_rows, threshold)
        text += "\n## Per intent, 5-fold cross-validation\n" + intent_calibration(
            cv_examples, cv_predictions, ASSERTING_INTENTS
        )
        plot_calibration(cv_rows, threshold, reports / "calibration.png")
    else:
        plot_calibration(rows, threshold, reports / "calibration.png")
    (reports / "calibration.md").write_text(text, encoding="utf-8")

    result: dict[str, Any] = {
        "examples": len(examples),
        "macro_f1": intents["with_fallback"]["macro avg"]["f1-score"],
        "classifier_macro_f1": intents["classifier"]["macro avg"]["f1-score"],
        "accuracy": intents["with_fallback"]["accuracy"],
        "safety_recall": {i: intents["with_fallback"][i]["recall"] for i in SAFETY_INTENTS},
        "fallback_threshold": threshold,
        "cross_validation_accuracy": cv_accuracy,
        "model": model.name,
        **asking,
    }
    if compare_normalizer:
        with tempfile.TemporaryDirectory() as tmp:
            progress("training without the normaliser, for comparison")
            plain = without_normalizer(root, Path(tmp))
            _, plain_intents = evaluate_model(plain, examples)
        comparison = {
            "with_normalizer": {"macro_f1": result["macro_f1"], "accuracy": result["accuracy"]},
            "without_normalizer": {
                "macro_f1": plain_intents["with_fallback"]["macro avg"]["f1-score"],
                "accuracy": plain_intents["with_fallback"]["accuracy"],
            },
        }
        (reports / "normalizer.json").write_text(json.dumps(comparison, indent=2), encoding="utf-8")
        result["without_normalizer_macro_f1"] = comparison["without_normalizer"]["macro_f1"]

    met = (
        result["macro_f1"] >= MACRO_F1_TARGET
        and all(r >= SAFETY_RECALL_TARGET for r in result["safety_recall"].values())
        and result["right_among_answered"] >= ANSWERED_RIGHT_TARGET
        and (cv_accuracy is None or cv_accuracy >= CV_ACCURACY_TARGET)
    )
    safety = " ".join(f"{k}={v:.2f}" for k, v in result["safety_recall"].items())
    summary = (
        f"held-out {result['examples']} examples: macro-F1 {result['macro_f1']:.3f} "
        f"(classifier alone {result['classifier_macro_f1']:.3f}), "
        f"accuracy {result['accuracy']:.3f}, "
        f"answered without asking {result['answered']:.1%} ({result['right_among_answered']:.1%} "
        f"right), asked {result['asked']:.1%} ({result['asked_two_readings']:.1%} naming two "
        f"readings), embedded {result['embedded']:.0%}, "
        f"safety recall {safety}"
        + (
            f", without normaliser macro-F1 {result['without_normalizer_macro_f1']:.3f}"
            if compare_normalizer
            else ""
        )
        + (f", 5-fold CV accuracy {cv_accuracy:.3f}" if cv_accuracy is not None else "")
        + f" -> targets {'met' if met else 'NOT met'}"
    )
    result["targets_met"] = met
    result["summary"] = summary
    (reports / "summary.txt").write_text(summary + "\n", encoding="utf-8")
    return result
