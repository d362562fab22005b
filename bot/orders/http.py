"""The order system over HTTP (contract in README, "Order system").

``GET {base}/orders/{order_id}`` with ``Authorization: Bearer {token}``:
200 and an order record, 404 for an unknown order; anything else, a timeout
(3 s by default) or an unreadable body is a backend error.
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import aiohttp

from bot.orders.backend import Order, OrderBackendError, OrderNotFound


class HttpOrderBackend:
    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, token: str | None, timeout: float = 3.0
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def get_order(self, order_id: str) -> Order:
        url = f"{self._base}/orders/{quote(order_id, safe='')}"
        try:
            async with self._session.get(url, headers=self._headers, timeout=self._timeout) as resp:
                if resp.status == 404:
                    raise OrderNotFound(order_id)
                if resp.status != 200:
                    raise OrderBackendError(f"order system answered {resp.status}")
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise OrderBackendError(f"order system unreachable: {exc!r}") from exc
        if not isinstance(data, dict):
            raise OrderBackendError("order system sent something other than an object")
        order = Order.from_json(data)
        if order.order_id != order_id:
            raise OrderBackendError("order system answered about another order")
        return order
