"""`/webhooks/wecom-kf`: WeCom's URL check (GET) and its "new messages" callback (POST).

WeCom signs with ``msg_signature`` over the token, timestamp, nonce and the
encrypted text, and always encrypts (receiver id: the corp id). Refusals are
4xx with a JSON body and a log line: a bad signature or a timestamp outside
`WECHAT_TIMESTAMP_WINDOW` (403), a message for another corp (403), a body
over the size limit (413), XML with a DTD, malformed XML or a broken
``Encrypt`` (400). The callback is answered at once; the messages are pulled
in the background (bot/channels/wecom_kf/channel.py).
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from bot.app_keys import (
    SETTINGS,
    WECOM_KF,
    WECOM_KF_CRYPTO,
)
from bot.channels.pushed import mount
from bot.channels.wechat.crypto import BadSignature, CryptoError, WrongReceiver
from bot.channels.wechat.xml import XmlError, parse
from bot.errors import ApiError
from bot.settings import Settings

logger = logging.getLogger(__name__)

PATH = "/webhooks/wecom-kf"
ANNOUNCEMENT = "kf_msg_or_event"


def _opened(request: web.Request, encrypt: str) -> str:
    """The plaintext of `encrypt`, signed by WeCom recently; 4xx otherwise."""
    query = request.query
    timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        raise ApiError(403, "bad_timestamp", "`timestamp` must be unix seconds.") from None
    if age > request.app[SETTINGS].wechat_timestamp_window:
        raise ApiError(403, "stale_timestamp", "`timestamp` is outside the accepted window.")
    try:
        return request.app[WECOM_KF_CRYPTO].open_envelope(
            query.get("msg_signature"), timestamp, nonce, encrypt
        )
    except BadSignature as exc:
        raise ApiError(403, "bad_signature", str(exc)) from exc
    except WrongReceiver as exc:
        raise ApiError(403, "wrong_corp", str(exc)) from exc
    except CryptoError as exc:
        raise ApiError(400, "invalid_encrypt", str(exc)) from exc


async def verify(request: web.Request) -> web.Response:
    """WeCom checks the URL when it is saved: answer `echostr` decrypted."""
    echostr = request.query.get("echostr", "")
    if not echostr:
        raise ApiError(400, "missing_echostr", "`echostr` is required.")
    return web.Response(text=_opened(request, echostr))


async def receive(request: web.Request) -> web.Response:
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"The body is over {limit} bytes.")
    outer = _xml(await request.read())
    encrypt = outer.get("Encrypt")
    if not encrypt:
        raise ApiError(400, "invalid_message", "WeCom's callback needs an `Encrypt` field.")
    fields = _xml(_opened(request, encrypt))
    if fields.get("Event") != ANNOUNCEMENT:
        logger.info("WeCom callback %r ignored", fields.get("Event") or fields.get("MsgType"))
        return web.Response(text="success")
    open_kfid = fields.get("OpenKfId", "")
    if not open_kfid:
        raise ApiError(400, "invalid_message", "`kf_msg_or_event` needs `OpenKfId`.")
    request.app[WECOM_KF].announced(open_kfid, fields.get("Token", ""))
    return web.Response(text="success")


def _xml(body: bytes | str) -> dict[str, str]:
    try:
        return parse(body)
    except XmlError as exc:
        raise ApiError(400, "invalid_xml", str(exc)) from exc


def setup(app: web.Application, settings: Settings) -> bool:
    """The routes, only when WeChat Customer Service is configured; whether it is."""
    required = {
        "WECOM_CORP_ID": settings.wecom_corp_id,
        "WECOM_KF_SECRET": settings.wecom_kf_secret,
        "WECOM_TOKEN": settings.wecom_token,
        "WECOM_AES_KEY": settings.wecom_aes_key,
    }
    return mount(app, "WeChat Customer Service", PATH, (verify, receive), required, logger)
