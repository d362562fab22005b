"""`/webhooks/wechat`: WeChat's server verification (GET) and message push (POST).

Every refusal is a 4xx with a JSON body and a log line: a bad signature or a
timestamp outside `WECHAT_TIMESTAMP_WINDOW` (403), a message encrypted for
another AppID (403), a body over the size limit (413), XML with a DTD or
entities, malformed XML or a broken ``Encrypt`` field (400).
"""

from __future__ import annotations

import logging
import secrets
import time

from aiohttp import web

from bot.app_keys import RATE_LIMITS, SETTINGS, WECHAT, WECHAT_CRYPTO
from bot.channels.pushed import mount, signed_request
from bot.channels.wechat.channel import conversation_id
from bot.channels.wechat.crypto import CryptoError, MessageCrypto, signature, signature_ok
from bot.channels.wechat.xml import XmlError, encrypted_reply, parse, text_reply
from bot.errors import ApiError
from bot.settings import Settings

logger = logging.getLogger(__name__)


def _checked(request: web.Request) -> tuple[str, str]:
    """(timestamp, nonce) of a request WeChat signed, recently; 403 otherwise."""
    settings = request.app[SETTINGS]
    assert settings.wechat_token is not None
    return signed_request(request.query, settings.wechat_token, settings.wechat_timestamp_window)


async def verify(request: web.Request) -> web.Response:
    """WeChat checks the URL once, when it is saved in the admin console."""
    _checked(request)
    return web.Response(text=request.query.get("echostr", ""))


async def receive(request: web.Request) -> web.Response:
    timestamp, nonce = _checked(request)
    settings = request.app[SETTINGS]
    limit = settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"The body is over {limit} bytes.")
    body = await request.read()  # read in full (and bounded) by bot/security/body.py
    fields = _xml(body)
    crypto = request.app[WECHAT_CRYPTO]
    encrypted = request.query.get("encrypt_type") == "aes"
    if encrypted:
        fields = _decrypted(request, crypto, fields, timestamp, nonce)
    # WeChat cannot take a 429: an excess message is logged, not processed, answered once.
    openid = fields.get("FromUserName")
    excess = await request.app[RATE_LIMITS].excess(conversation_id(openid)) if openid else None
    reply = excess if excess is not None else await request.app[WECHAT].receive(fields)
    if not reply:
        return web.Response(text="success")
    xml = text_reply(
        fields.get("FromUserName", ""), fields.get("ToUserName", ""), int(time.time()), reply
    )
    if encrypted and crypto is not None:
        xml = _encrypted(crypto, xml)
    return web.Response(text=xml, content_type="application/xml")


def _xml(body: bytes | str) -> dict[str, str]:
    try:
        return parse(body)
    except XmlError as exc:
        raise ApiError(400, "invalid_xml", str(exc)) from exc


def _decrypted(
    request: web.Request,
    crypto: MessageCrypto | None,
    fields: dict[str, str],
    timestamp: str,
    nonce: str,
) -> dict[str, str]:
    if crypto is None:
        raise ApiError(400, "aes_not_configured", "Safe mode needs WECHAT_AES_KEY.")
    encrypt = fields.get("Encrypt")
    if not encrypt:
        raise ApiError(400, "invalid_message", "Safe mode needs an `Encrypt` field.")
    expected = request.query.get("msg_signature")
    if not signature_ok(expected, crypto.token, timestamp, nonce, encrypt):
        raise ApiError(403, "bad_signature", "`msg_signature` does not match.")
    try:
        plain = crypto.decrypt(encrypt)
    except CryptoError as exc:
        if "AppID" in str(exc):
            raise ApiError(403, "wrong_appid", str(exc)) from exc
        raise ApiError(400, "invalid_encrypt", str(exc)) from exc
    return _xml(plain)


def _encrypted(crypto: MessageCrypto, xml: str) -> str:
    encrypt = crypto.encrypt(xml)
    timestamp, nonce = str(int(time.time())), secrets.token_hex(8)
    return encrypted_reply(
        encrypt, signature(crypto.token, timestamp, nonce, encrypt), timestamp, nonce
    )


def setup(app: web.Application, settings: Settings) -> bool:
    """The routes, only when WeChat is configured (otherwise one log line); whether it is."""
    required = {
        "WECHAT_TOKEN": settings.wechat_token,
        "WECHAT_APPID": settings.wechat_appid,
        "WECHAT_SECRET": settings.wechat_secret,
    }
    return mount(app, "WeChat", "/webhooks/wechat", (verify, receive), required, logger)

