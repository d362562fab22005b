"""When people answer: a weekly schedule and holidays, in the brand's timezone."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")


@dataclass(frozen=True)
class ServiceHours:
    timezone: ZoneInfo
    weekly: dict[int, tuple[dt.time, dt.time]]  # weekday -> (open, close)
    holidays: frozenset[dt.date]
    described: str

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ServiceHours:
        weekly = {}
        for index, day in enumerate(DAYS):
            span = (raw.get("weekly") or {}).get(day)
            if span:
                opens, closes = (dt.time.fromisoformat(str(t)) for t in span)
                if closes <= opens:
                    raise ValueError(f"service_hours.{day}: closing must come after opening")
                weekly[index] = (opens, closes)
        holidays = frozenset(
            h if isinstance(h, dt.date) else dt.date.fromisoformat(str(h))
            for h in raw.get("holidays") or []
        )
        return cls(
            ZoneInfo(raw.get("timezone", "Asia/Shanghai")),
            weekly,
            holidays,
            str(raw.get("described", "")),
        )

    def local(self, now: dt.datetime) -> dt.datetime:
        return now.astimezone(self.timezone)

    def is_open(self, now: dt.datetime) -> bool:
        local = self.local(now)
        span = self.weekly.get(local.weekday())
        if span is None or local.date() in self.holidays:
            return False
        return span[0] <= local.time() < span[1]

    def next_open(self, now: dt.datetime) -> dt.datetime | None:
        """When people are next there (now, if they are); None if never in the next 60 days."""
        local = self.local(now)
        for offset in range(61):
            day = local.date() + dt.timedelta(days=offset)
            span = self.weekly.get(day.weekday())
            if span is None or day in self.holidays:
                continue
            opens = dt.datetime.combine(day, span[0], self.timezone)
            closes = dt.datetime.combine(day, span[1], self.timezone)
            if local < closes:
                return max(opens, local)
        return None

    def describe_next_open(self, now: dt.datetime) -> str:
        """`今天 18:00`, `明天 9:00`, `周一 9:00` or `1月12日 9:00`, as a customer would say it."""
        when = self.next_open(now)
        if when is None:
            return "恢复服务后"
        today = self.local(now).date()
        days = (when.date() - today).days
        clock = f"{when.hour}:{when.minute:02d}"
        if days == 0:
            return f"今天 {clock}"
        if days == 1:
            return f"明天 {clock}"
        if days < 7:
            return f"{DAY_NAMES[when.weekday()]} {clock}"
        return f"{when.month}月{when.day}日 {clock}"
