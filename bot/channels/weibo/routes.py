"""`/webhooks/weibo`: Weibo's URL check (GET) and message push (POST).

Both carry ``signature``, ``timestamp`` and ``nonce``: the SHA-1 of the app
secret, timestamp and nonce, sorted and concatenated
(https://open.weibo.com/wiki/Messages_api_start). A bad signature or a
timestamp outside `WEIBO_TIMESTAMP_WINDOW` is a 403 and ``echostr`` is only
echoed when the check passes. A push that is not a Weibo message is a 400, a
body over the size limit a 413, all with a JSON body and a log line.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from bot.app_keys import RATE_LIMITS, SETTINGS, WEIBO
from bot.channels.inbound import read_json_object
from bot.channels.pushed import mount, signed_request
from bot.channels.weibo.channel import conversation_id
from bot.channels.weibo.message import parse, passive_reply
from bot.errors import ApiError
from bot.settings import Settings

logger = logging.getLogger(__name__)

PATH = "/webhooks/weibo"


def _checked(request: web.Request) -> None:
    settings = request.app[SETTINGS]
    assert settings.weibo_app_secret is not None
    signed_request(request.query, settings.weibo_app_secret, settings.weibo_timestamp_window)


async def verify(request: web.Request) -> web.Response:
    """Weibo checks the URL once, when developer mode is switched on."""
    _checked(request)
    return web.Response(text=request.query.get("echostr", ""))


async def receive(request: web.Request) -> web.Response:
    _checked(request)
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"The body is over {limit} bytes.")
    push = parse(await read_json_object(request))
    # Weibo cannot take a 429: an excess message is logged, not processed, answered once.
    excess = await request.app[RATE_LIMITS].excess(conversation_id(push.sender))
    reply = excess if excess is not None else await request.app[WEIBO].receive(push)
    if not reply:
        # An empty body: Weibo does nothing with it and does not deliver the push again.
        return web.Response(text="")
    return web.json_response(passive_reply(push, reply), dumps=_dumps)


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def setup(app: web.Application, settings: Settings) -> bool:
    """The routes, only when Weibo is configured (otherwise one log line); whether it is."""
    required = {
        "WEIBO_APP_SECRET": settings.weibo_app_secret,
        "WEIBO_ACCESS_TOKEN": settings.weibo_access_token,
    }
    return mount(app, "Weibo", PATH, (verify, receive), required, logger)
