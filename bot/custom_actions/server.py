"""rasa_sdk's ActionExecutor behind the action-server JSON contract."""

from __future__ import annotations

import json
import logging
from typing import Any

from rasa.utils.endpoints import ClientResponseError, EndpointConfig
from rasa_sdk.executor import ActionExecutor
from rasa_sdk.interfaces import ActionExecutionRejection, ActionNotFoundException

from bot.content.messages import TURN_FAILED, Messages
from bot.engine.output import ACTION_FAILED, PRODUCED_BY
from bot.security.tokens import bearer_matches

logger = logging.getLogger(__name__)


class ActionServer:
    """The executor and its token; empty until the model is served."""

    def __init__(self) -> None:
        self.executor: ActionExecutor | None = None
        self.token: str | None = None
        self.messages: Messages | None = None

    def configure(self, executor: ActionExecutor, token: str, messages: Messages) -> None:
        self.executor = executor
        self.token = token
        self.messages = messages  # the apology when an action fails

    def authorised(self, header: str | None) -> bool:
        return self.token is not None and bearer_matches(header, self.token)

    async def run(self, action_call: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        assert self.executor is not None and self.messages is not None, (
            "authorised() is False until configured"
        )
        name = str(action_call.get("next_action") or "")
        try:
            result = await self.executor.run(action_call)
        except ActionExecutionRejection as exc:
            return 400, {"error": exc.message, "action_name": exc.action_name}
        except ActionNotFoundException as exc:
            logger.error("no custom action named %r", exc.action_name)
            return 404, {"error": exc.message, "action_name": exc.action_name}
        except Exception:
            sender = (action_call.get("tracker") or {}).get("sender_id")
            logger.exception("custom action %r failed for conversation %r", name, sender)
            apology = self.messages.pick(TURN_FAILED)
            reply = {"text": apology, PRODUCED_BY: name, ACTION_FAILED: True}
            # Stop the turn after the apology: whatever was meant to follow the
            # action (a confirmation, a fallback) would now be wrong.
            listen = {"event": "followup", "name": "action_listen"}
            return 200, {"events": [listen], "responses": [reply]}
        result = result or {"events": [], "responses": []}
        for response in result.get("responses", []):
            response[PRODUCED_BY] = name
        return 200, result


class InProcessActionEndpoint(EndpointConfig):
    """The model's action endpoint when it is this very process.

    Rasa would POST each action call to our own /webhooks/actions route over
    loopback HTTP: the same handler, plus a client session, two JSON encodings
    and a request cycle per action (about a fifth of a message's CPU with
    forms, measured with the throughput benchmark). This endpoint hands the
    call to the same `ActionServer.run` directly and answers the way Rasa's
    HTTP client would, including its error for a non-200 status.
    """

    def __init__(self, url: str, server: ActionServer) -> None:
        super().__init__(url=url)
        self._server = server

    async def request(
        self,
        method: str = "post",
        subpath: str | None = None,
        content_type: str | None = "application/json",
        compress: bool = False,
        **kwargs: Any,
    ) -> Any:
        status, body = await self._server.run(kwargs.get("json") or {})
        if status != 200:
            raise ClientResponseError(status, "action server error", json.dumps(body))
        return body
