"""`POST /webhooks/actions`: the model's action endpoint, served by this same app.

Rasa calls custom actions over HTTP with the action-server JSON contract; this
route answers it with rasa_sdk's ``ActionExecutor``, in-process. A shared bearer
token keeps strangers from running actions against made-up trackers.

A custom action that raises does not take the customer's turn down with it: the
route logs the error and answers with an honest apology (``utter_action_failed``)
marked as such, so the conversation log shows what happened.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import zlib
from typing import Any

from aiohttp import web
from rasa_sdk.executor import ActionExecutor
from rasa_sdk.interfaces import ActionExecutionRejection, ActionNotFoundException
from redis.asyncio import Redis

from bot.engine.output import ACTION_FAILED, PRODUCED_BY
from bot.errors import ApiError
from bot.keys import ACTION_SERVER
from bot.redis_keys import Keys

logger = logging.getLogger(__name__)

PATH = "/webhooks/actions"


class ActionServer:
    """The executor and its token; empty until the model is served."""

    def __init__(self) -> None:
        self.executor: ActionExecutor | None = None
        self.token: str | None = None

    def configure(self, executor: ActionExecutor, token: str) -> None:
        self.executor = executor
        self.token = token

    def authorised(self, header: str | None) -> bool:
        if self.token is None or header is None:
            return False
        return hmac.compare_digest(header.encode(), f"Bearer {self.token}".encode())

    async def run(self, action_call: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        assert self.executor is not None, "authorised() is False until configured"
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
            apology = {"response": "utter_action_failed", PRODUCED_BY: name, ACTION_FAILED: True}
            return 200, {"events": [], "responses": [apology]}
        result = result or {"events": [], "responses": []}
        for response in result.get("responses", []):
            response[PRODUCED_BY] = name
        return 200, result


async def shared_token(redis: Redis, keys: Keys, configured: str | None) -> str:
    """The action route's token: configured, or created once and shared by every process."""
    if configured:
        return configured
    await redis.set(keys.action_token, secrets.token_urlsafe(32), nx=True)
    token = await redis.get(keys.action_token)
    if not token:
        raise RuntimeError("could not read the shared action token from Redis")
    return str(token)


async def handle(request: web.Request) -> web.Response:
    server = request.app[ACTION_SERVER]
    if not server.authorised(request.headers.get("Authorization")):
        raise ApiError(401, "unauthorised", "A valid action-endpoint token is required.")
    body = await request.read()
    try:
        if request.headers.get("Content-Encoding") == "deflate":
            body = zlib.decompress(body)  # Rasa compresses calls when told to
        action_call = json.loads(body)
    except (ValueError, UnicodeDecodeError, zlib.error) as exc:
        raise ApiError(400, "invalid_json", "The action call is not valid JSON.") from exc
    if not isinstance(action_call, dict):
        raise ApiError(400, "invalid_json", "The action call must be a JSON object.")
    status, body = await server.run(action_call)
    return web.json_response(body, status=status)


def setup(app: web.Application) -> None:
    app.router.add_post(PATH, handle)
