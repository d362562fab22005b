"""Measured performance fixes to the pinned Rasa 3.6.21.

- Rasa checks every reply of the action server with ``jsonschema.validate``,
  which first validates the *schema itself* against the JSON Schema
  meta-schema, on every call. With forms and custom actions that was about 65%
  of the CPU of a message here (py-spy, throughput benchmark). `apply` swaps in
  the same check against a validator compiled once: same schema, same errors,
  same message.
- Before every action Rasa copies the tracker by replaying all its events
  (``DialogueStateTracker.copy``), and several times a turn it works out which
  events apply by walking all of them (``applied_events``): together two
  thirds of what message 200 of a conversation cost more than message 2.
  `_copy` builds the same tracker from the state the events left behind, and
  `_applied_events` extends the previous answer with the events added since,
  unless one of them can change what came before it (a restart, a rewind, a
  form); then it walks them all, as Rasa does.
- `RulePolicy` looks the latest states up among its rules on every
  prediction, two or three times a message, and most of that work repeats:
  customers' turns fall into the same few patterns. `_find_action_from_rules`
  turns the tracker into states as Rasa does, then answers from a table of
  the answers already worked out for the same states and active loop (the
  rest of Rasa's lookup reads nothing else), and works out the rest as Rasa
  does.
"""

from __future__ import annotations

import copy
import itertools
from collections import OrderedDict, deque
from functools import cache
from typing import Any

_applied = False
# Rule lookups remembered per policy (states and active loop -> answer).
RULE_ANSWERS = 4096


@cache
def _response_validator() -> Any:
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    return validator_for(schema)(schema)


def _validate_action_result(self: Any, result: dict[str, Any]) -> bool:
    from jsonschema import ValidationError
    from rasa.shared.constants import DOCS_BASE_URL

    try:
        _response_validator().validate(result)
        return True
    except ValidationError as e:
        e.message += (
            f". Failed to validate Action server response from API, "
            f"make sure your response from the Action endpoint is valid. "
            f"For more information about the format visit "
            f"{DOCS_BASE_URL}/custom-actions"
        )
        raise e


_ORIGINAL_APPLIED_EVENTS: Any = None
_ORIGINAL_FIND_ACTION_FROM_RULES: Any = None
# Attribute holding (events deque, length, last event, applied events, loop names).
_APPLIED = "_kefu_applied_events"


def _rewinding() -> tuple[type, ...]:
    from rasa.shared.core.events import (
        ActionReverted,
        ActiveLoop,
        Restarted,
        SessionStarted,
        UserUtteranceReverted,
    )

    return (Restarted, SessionStarted, ActionReverted, UserUtteranceReverted, ActiveLoop)


def _applied_events(self: Any) -> list[Any]:
    """``DialogueStateTracker.applied_events``, extended from the last answer."""
    from rasa.shared.core.events import ActionExecuted

    events = self.events
    length = len(events)
    last = events[-1] if length else None
    memo = self.__dict__.get(_APPLIED)
    if memo is not None:
        seen_deque, seen_length, seen_last, applied, loops = memo
        if seen_deque is events and seen_length == length and seen_last is last:
            return list(applied)
        if seen_deque is events and seen_length < length and events[seen_length - 1] is seen_last:
            added = list(itertools.islice(events, seen_length, None))
            rewinding = _rewinding()
            if not any(
                isinstance(e, rewinding)
                or (isinstance(e, ActionExecuted) and e.action_name in loops)
                for e in added
            ):
                applied = applied + added
                self.__dict__[_APPLIED] = (events, length, last, applied, loops)
                return list(applied)
    applied = _ORIGINAL_APPLIED_EVENTS(self)
    from rasa.shared.core.events import ActiveLoop

    loops = frozenset(e.name for e in events if isinstance(e, ActiveLoop) and e.name)
    if length:
        self.__dict__[_APPLIED] = (events, length, last, applied, loops)
    return list(applied)


def _copy(self: Any) -> Any:
    """``DialogueStateTracker.copy`` without replaying the events: the copy holds
    the same events and the state they left (the replayed copy has no model id
    either)."""
    tracker = self.init_copy()
    tracker.events = deque(self.events, maxlen=self.events.maxlen)
    tracker.slots = {name: copy.copy(slot) for name, slot in self.slots.items()}
    tracker._paused = self._paused
    tracker.followup_action = self.followup_action
    tracker.latest_action = copy.copy(self.latest_action)
    tracker.latest_message = self.latest_message
    tracker.latest_bot_utterance = self.latest_bot_utterance
    tracker.active_loop = copy.deepcopy(self.active_loop)
    return tracker


def _find_action_from_rules(
    self: Any, tracker: Any, domain: Any, use_text_for_last_user_input: bool
) -> tuple[str | None, str | None, bool]:
    """``RulePolicy._find_action_from_rules`` of Rasa 3.6.21, remembering its answers."""
    from rasa.shared.core.constants import ACTION_LISTEN_NAME

    if use_text_for_last_user_input and tracker.latest_action_name != ACTION_LISTEN_NAME:
        return None, None, False
    states = self._prediction_states(
        tracker,
        domain,
        use_text_for_last_user_input,
        rule_only_data=self._get_rule_only_data(),
    )
    key = (self._create_feature_key(states), tracker.active_loop_name)
    answers = self.__dict__.get("_kefu_rule_answers")
    if answers is None:
        answers = self.__dict__.setdefault("_kefu_rule_answers", OrderedDict())
    found = answers.get(key)
    if found is None:
        found = _rules_answer(self, states, tracker.active_loop_name)
        answers[key] = found
        if len(answers) > RULE_ANSWERS:
            answers.popitem(last=False)
    return found


def _rules_answer(
    self: Any, states: list[Any], active_loop_name: str | None
) -> tuple[str | None, str | None, bool]:
    """The rest of Rasa's ``_find_action_from_rules``: it reads only the states,
    the active loop and the policy's rules."""
    from rasa.core.policies.rule_policy import (
        DO_NOT_PREDICT_LOOP_ACTION,
        LOOP_WAS_INTERRUPTED,
        RULES,
        RULES_FOR_LOOP_UNHAPPY_PATH,
    )
    from rasa.shared.core.constants import ACTION_LISTEN_NAME
    from rasa.shared.core.trackers import get_active_loop_name

    returning_from_unhappy_path = False
    rule_keys = self._get_possible_keys(self.lookup[RULES], states)
    predicted_action_name = None
    best_rule_key = ""
    if rule_keys:
        best_rule_key = max(rule_keys, key=len)
        predicted_action_name = self.lookup[RULES].get(best_rule_key)
    if active_loop_name:
        loop_unhappy_keys = self._get_possible_keys(
            self.lookup[RULES_FOR_LOOP_UNHAPPY_PATH], states
        )
        unhappy_path_conditions = [
            self.lookup[RULES_FOR_LOOP_UNHAPPY_PATH].get(key) for key in loop_unhappy_keys
        ]
        predicted_listen_from_general_rule = predicted_action_name == ACTION_LISTEN_NAME and (
            not get_active_loop_name(self._rule_key_to_state(best_rule_key)[-1])
        )
        if predicted_listen_from_general_rule:
            if DO_NOT_PREDICT_LOOP_ACTION not in unhappy_path_conditions:
                return active_loop_name, best_rule_key, returning_from_unhappy_path
            predicted_action_name = None
        if LOOP_WAS_INTERRUPTED in unhappy_path_conditions:
            returning_from_unhappy_path = True
    return (
        predicted_action_name,
        best_rule_key or self._create_feature_key(states),
        returning_from_unhappy_path,
    )


def apply() -> None:
    """Install the fixes (idempotent); called before a model is loaded."""
    global _applied
    if _applied:
        return
    from rasa.core.actions.action import RemoteAction
    from rasa.core.policies.rule_policy import RulePolicy
    from rasa.shared.core.trackers import DialogueStateTracker

    global _ORIGINAL_APPLIED_EVENTS, _ORIGINAL_FIND_ACTION_FROM_RULES
    _ORIGINAL_FIND_ACTION_FROM_RULES = RulePolicy._find_action_from_rules
    RulePolicy._find_action_from_rules = _find_action_from_rules
    RemoteAction._validate_action_result = _validate_action_result
    _ORIGINAL_APPLIED_EVENTS = DialogueStateTracker.applied_events
    DialogueStateTracker.applied_events = _applied_events
    DialogueStateTracker.copy = _copy
    _applied = True
