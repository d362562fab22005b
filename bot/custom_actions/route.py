"""`POST /webhooks/actions`: the model's action endpoint, served by this same app.

Rasa calls custom actions over HTTP with the action-server JSON contract; this
route answers it with rasa_sdk's ``ActionExecutor``, in-process. A shared bearer
token keeps strangers from running actions against made-up trackers.

A custom action that raises does not take the customer's turn down with it: the
route logs the error and answers with an honest apology, marked as such, so the
conversation log shows what happened.
"""

from __future__ import annotations

import logging
import secrets
import zlib

from aiohttp import web
from redis.asyncio import Redis

from bot.app_keys import ACTION_SERVER
from bot.errors import ApiError
from bot.jsonutil import json_response, loads
from bot.redis_keys import Keys

logger = logging.getLogger(__name__)

PATH = "/webhooks/actions"


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
        action_call = loads(body)
    except (ValueError, UnicodeDecodeError, zlib.error) as exc:
        raise ApiError(400, "invalid_json", "The action call is not valid JSON.") from exc
    if not isinstance(action_call, dict):
        raise ApiError(400, "invalid_json", "The action call must be a JSON object.")
    status, result = await server.run(action_call)
    return json_response(result, status=status)


def setup(app: web.Application) -> None:
    app.router.add_post(PATH, handle)
