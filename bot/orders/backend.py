"""What the bot may learn about an order, and from where.

The bot states an order's status only as an `OrderBackend` returned it, at
the time it asked. A backend that cannot answer raises `OrderBackendError`;
the bot then says it cannot check now, never an older or guessed status.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

# The formats README documents, the same as the `order_id` regexes the NLU uses
# (nlu_data/nlu/entities.yml; a test keeps them equal).
ORDER_NUMBER = r"(?<![0-9])[0-9]{12,20}(?![0-9])"
TRACKING_NUMBER = r"(?<![A-Za-z0-9])(SF|YT|ZTO|JT|JD|YD|STO|EMS)[0-9]{10,15}(?![0-9])"
_ORDER_ID = re.compile(f"{ORDER_NUMBER}|{TRACKING_NUMBER}")


def find_order_id(text: str) -> str | None:
    """The first order or tracking number in `text` (already normalised), if any."""
    match = _ORDER_ID.search(text.upper())
    return match.group(0) if match else None


def mask_order_id(order_id: str) -> str:
    """Shortened for echoing back: the last four characters."""
    return f"尾号{order_id[-4:]}"


def mask_phone(phone: str) -> str:
    """138****5678."""
    digits = re.sub(r"\D", "", phone)[-11:]
    return f"{digits[:3]}****{digits[-4:]}" if len(digits) == 11 else "****"


@dataclass(frozen=True)
class Order:
    order_id: str
    status: str  # machine code: pending, shipped, in_transit, delivered, cancelled, ...
    status_text: str  # how the order system describes it to customers, in Chinese
    updated_at: str  # when the order system last changed it (ISO 8601)
    carrier: str | None = None
    tracking_number: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Order:
        try:
            return cls(
                order_id=str(data["order_id"]),
                status=str(data["status"]),
                status_text=str(data["status_text"]),
                updated_at=str(data["updated_at"]),
                carrier=data.get("carrier") or None,
                tracking_number=data.get("tracking_number") or None,
            )
        except (KeyError, TypeError) as exc:
            raise OrderBackendError(f"malformed order record: {exc}") from exc


class OrderNotFound(Exception):
    """The order system does not know this order."""


class OrderBackendError(Exception):
    """The order system could not be asked, or its answer could not be read."""


class OrderBackend(Protocol):
    async def get_order(self, order_id: str) -> Order:
        """The order as the order system has it now; OrderNotFound or OrderBackendError."""
        ...
