"""The bot's clock: what time it believes it is.

Service hours are decided by it; the app factory takes another one in tests
to move in and out of those hours.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
