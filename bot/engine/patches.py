"""A measured performance fix to the pinned Rasa 3.6.21.

Rasa checks every reply of the action server with ``jsonschema.validate``,
which first validates the *schema itself* against the JSON Schema meta-schema,
on every call. With forms and custom actions that was about 65% of the CPU of
a message here (py-spy, throughput benchmark). `apply` swaps in the same check
against a validator compiled once: same schema, same errors, same message.
"""

from __future__ import annotations

from functools import cache
from typing import Any

_applied = False


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


def apply() -> None:
    """Install the fixes (idempotent); called before a model is loaded."""
    global _applied
    if _applied:
        return
    from rasa.core.actions.action import RemoteAction

    RemoteAction._validate_action_result = _validate_action_result
    _applied = True
