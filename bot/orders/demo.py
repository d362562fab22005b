"""Sample orders kept in Redis, so the bot works out of the box (`make run` seeds them)."""

from __future__ import annotations

import json
from dataclasses import asdict

from redis.asyncio import Redis

from bot.orders.backend import Order, OrderNotFound
from bot.redis_connection import connect
from bot.redis_keys import Keys
from bot.settings import Settings

SAMPLE_ORDERS = (
    Order(
        "202611200001234567", "delivered", "已签收",
        "2026-11-23T15:42:00+08:00", "中通快递", "ZTO12345678901234",
    ),
    Order(
        "202611240007654321", "in_transit", "运输中，已到达杭州转运中心",
        "2026-11-25T09:10:00+08:00", "顺丰速运", "SF1234567890123",
    ),
    Order("202611250001112223", "pending", "待发货（仓库打包中）", "2026-11-25T20:05:00+08:00"),
    Order("202611180009998887", "cancelled", "已取消，款项已原路退回", "2026-11-19T11:30:00+08:00"),
)  # fmt: skip


class RedisDemoOrders:
    """An OrderBackend over a Redis hash of sample orders (``P:demo:orders``)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._key = keys.demo_orders

    async def get_order(self, order_id: str) -> Order:
        raw = await self._redis.hget(self._key, order_id)
        if raw is None:
            # Tracking numbers find their order too.
            for value in (await self._redis.hgetall(self._key)).values():
                order = Order.from_json(json.loads(value))
                if order.tracking_number == order_id:
                    return order
            raise OrderNotFound(order_id)
        return Order.from_json(json.loads(raw))

    async def seed(self, orders: tuple[Order, ...] = SAMPLE_ORDERS) -> int:
        mapping = {o.order_id: json.dumps(asdict(o), ensure_ascii=False) for o in orders}
        await self._redis.hset(self._key, mapping=mapping)
        return len(mapping)


async def seed_demo_orders(settings: Settings) -> int:
    """`python -m bot seed-demo-orders`, run by `make run`."""
    redis = connect(settings)
    try:
        return await RedisDemoOrders(redis, Keys(settings.key_prefix)).seed()
    finally:
        await redis.close()
