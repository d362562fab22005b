"""Comparing secrets a stranger sends (bearer tokens, CSRF tokens, cookies).

Header values are whatever bytes the client sent: aiohttp decodes them as
UTF-8 with surrogate escapes, so a non-UTF-8 ``Authorization`` header
arrives as a string that a plain ``.encode()`` refuses (a 500 before). Here
any such value is simply not the secret.
"""

from __future__ import annotations

import hmac


def raw(value: str) -> bytes:
    """The bytes the client sent for a header value (what aiohttp decoded)."""
    return value.encode("utf-8", "surrogateescape")


def same_secret(given: str | None, expected: str) -> bool:
    """Whether `given` is `expected`, in constant time; False for anything unreadable."""
    if given is None:
        return False
    return hmac.compare_digest(raw(given), expected.encode("utf-8"))


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def bearer_matches(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header is ``Bearer <token>``: the one check of every
    token-protected endpoint (admin API, REST channel, custom actions, metrics)."""
    return same_secret(bearer(header), token)
