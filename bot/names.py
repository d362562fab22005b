"""Names more than one module relies on: intents the code acts on, and who wrote a reply.

Intents live in `nlu_data/domain.yml`; the code names one only where it must
treat it specially, and does so through this module. A reply in the
conversation log carries the `action` that produced it: a Rasa action or
response name for the bot's lines, ``agent:<username>`` for a person's.
"""

from __future__ import annotations

# Rasa's intent for "nothing was confident enough" (what the fallback classifier predicts).
FALLBACK = "nlu_fallback"

AGENT_PREFIX = "agent:"


def agent_action(username: str) -> str:
    """The logged `action` of a reply an agent wrote."""
    return AGENT_PREFIX + username


def is_agent_action(action: object) -> bool:
    """Whether a logged reply was written by a person (any value is safe to pass)."""
    return isinstance(action, str) and action.startswith(AGENT_PREFIX)
