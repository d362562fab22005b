"""Rasa's inference graph, run without dask, and dialogue prediction on a bounded window.

Two costs the throughput profile showed in every dialogue turn (README,
"Performance"):

- Rasa runs the prediction graph (domain provider, `RulePolicy`, ensemble)
  through ``dask.get`` on every prediction, two or more per message: building
  and scheduling a dask graph of four nodes cost half as much as the policy.
  `SequentialGraphRunner` calls the very same ``GraphNode`` objects (hooks,
  lazily loaded components and all) in a topological order computed once per
  set of targets, and keeps the outputs of the nodes that only hand over what
  was loaded with the model (domain, rule-only data).
- `RulePolicy` turns the whole session into states before it looks at the
  last few: a turn cost grew with the length of the conversation. A rule only
  ever compares the last ``len(rule)`` states (``RulePolicy._is_rule_applicable``
  answers True past a rule's length), so `recent_window` hands the policy the
  tracker's latest turns, with the slots as they stood where the window
  starts, whenever that is exactly equivalent, and the whole tracker otherwise
  (a form active at that point, reverted events in the window). A form that
  starts, runs or ends inside the window is replayed there as in the whole
  tracker, trigger message and all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from rasa.core.policies.rule_policy import RULES, RULES_FOR_LOOP_UNHAPPY_PATH, RulePolicy
from rasa.engine.constants import PLACEHOLDER_TRACKER
from rasa.engine.graph import GraphNode, GraphSchema
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.engine.runner.interface import GraphRunner
from rasa.graph_components.providers.domain_provider import DomainProvider
from rasa.graph_components.providers.rule_only_provider import RuleOnlyDataProvider
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import (
    ActionExecuted,
    ActionReverted,
    ActiveLoop,
    AllSlotsReset,
    Event,
    Restarted,
    SessionStarted,
    SlotSet,
    UserUtteranceReverted,
)
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.utils.common import all_subclasses

# Nodes whose output is fixed once the model is loaded.
_CONSTANT_COMPONENTS = (DomainProvider, RuleOnlyDataProvider)


def _with_subclasses(*classes: type[Event]) -> frozenset[type[Event]]:
    """Exact types to test with `type(e) in ...`: isinstance on Rasa's abstract
    event classes is slow enough to matter over a thousand events."""
    found = set(classes)
    for cls in classes:
        found.update(all_subclasses(cls))
    return frozenset(found)


# Events that make a tracker's states depend on events before them.
_NOT_WINDOWABLE = _with_subclasses(
    ActionReverted,
    UserUtteranceReverted,
    Restarted,
    SessionStarted,
    AllSlotsReset,
)
_ACTIONS = _with_subclasses(ActionExecuted)
_SLOTS = _with_subclasses(SlotSet)
_LOOPS = _with_subclasses(ActiveLoop)
_SLOTS_START_OVER = _with_subclasses(Restarted, SessionStarted, AllSlotsReset)
# Prior actions kept beyond the longest rule: the window's own start (a slot
# snapshot, no session start) is then never among the states a rule compares.
WINDOW_MARGIN = 4


class SequentialGraphRunner(GraphRunner):
    """Runs a loaded model's graph nodes in order, in the calling thread, without dask."""

    def __init__(self, dask_runner: DaskGraphRunner, window_actions: int | None = None) -> None:
        self._schema: GraphSchema = dask_runner._graph_schema
        self._nodes: dict[str, GraphNode] = dask_runner._instantiated_nodes
        self._orders: dict[tuple[str, ...], list[str]] = {}
        self._constant: dict[str, Any] = {}
        self._window_actions = window_actions

    @classmethod
    def create(cls, *args: Any, **kwargs: Any) -> SequentialGraphRunner:
        raise NotImplementedError("wraps a loaded DaskGraphRunner; see __init__")

    def _order(self, targets: Sequence[str]) -> list[str]:
        key = tuple(targets)
        order = self._orders.get(key)
        if order is None:
            minimal = self._schema.minimal_graph_schema(list(targets))
            order = []
            done: set[str] = set()

            def visit(name: str) -> None:
                if name in done or name not in minimal.nodes:
                    return  # seen, or a run input (a placeholder)
                done.add(name)
                for need in minimal.nodes[name].needs.values():
                    visit(need)
                order.append(name)

            for target in targets:
                visit(target)
            self._orders[key] = order
        return order

    def run(
        self,
        inputs: dict[str, Any] | None = None,
        targets: list[str] | None = None,
    ) -> dict[str, Any]:
        """Same contract as ``DaskGraphRunner.run``: the targets' outputs by name."""
        run_targets = targets if targets else self._schema.target_names
        values: dict[str, Any] = dict(inputs or {})
        tracker = values.get(PLACEHOLDER_TRACKER)
        if self._window_actions and isinstance(tracker, DialogueStateTracker):
            values[PLACEHOLDER_TRACKER] = recent_window(tracker, self._window_actions)
        for name in self._order(run_targets):
            if name in self._constant:
                values[name] = self._constant[name]
                continue
            node = self._nodes[name]
            needs = self._schema.nodes[name].needs.values()
            _, output = node(*((need, values[need]) for need in needs if need in values))
            values[name] = output
            if not needs and issubclass(self._schema.nodes[name].uses, _CONSTANT_COMPONENTS):
                self._constant[name] = output
        return {target: values[target] for target in run_targets}


def longest_rule(policies: Iterable[Any]) -> int | None:
    """The most states any rule of the model compares; None if a policy is not a RulePolicy."""
    longest = 0
    for policy in policies:
        if type(policy) is not RulePolicy:
            return None  # other policies may read the whole history
        for table in (RULES, RULES_FOR_LOOP_UNHAPPY_PATH):
            for key in policy.lookup.get(table, {}):
                try:
                    longest = max(longest, len(json.loads(key)))
                except (TypeError, ValueError):
                    return None
    return longest


def recent_window(tracker: DialogueStateTracker, actions: int) -> DialogueStateTracker:
    """The tracker's events from the action_listen `actions` actions back, with the
    slots as they were there; the tracker itself when that would not be the same
    to a rule (see the module docstring)."""
    events = tracker.events
    if len(events) <= 2 * actions:
        return tracker
    listed = list(events)
    seen = 0
    start = None
    for i in range(len(listed) - 1, -1, -1):
        event = listed[i]
        kind = type(event)
        if kind in _NOT_WINDOWABLE:
            return tracker
        if kind in _ACTIONS:
            seen += 1
            if seen > actions and event.action_name == ACTION_LISTEN_NAME:
                start = i
                break
    if start is None:
        return tracker
    before = _state_before(listed, start)  # None: a form was active where it starts
    if before is None:
        return tracker
    window: list[Event] = [SlotSet(name, value) for name, value in before.items()]
    window.extend(listed[start:])
    return DialogueStateTracker.from_events(
        tracker.sender_id, window, slots=list(tracker.slots.values())
    )


def _state_before(events: list[Event], start: int) -> dict[str, Any] | None:
    """Slot values just before `start`; None if a form was active there."""
    values: dict[str, Any] = {}
    loop_known = False
    for i in range(start - 1, -1, -1):
        event = events[i]
        kind = type(event)
        if kind in _LOOPS and not loop_known:
            if event.name:
                return None
            loop_known = True
        elif kind in _SLOTS:
            values.setdefault(event.key, event.value)
        elif kind in _SLOTS_START_OVER:
            break  # slots start over here (a new session sets the ones it carries after it)
    return values
