"""The KPIs of a date range as CSV, one row per day, for spreadsheets.

Only figures and dates: no customer text (the unrecognised messages and top
intents stay in the JSON and on the page), so no cell can be read by a
spreadsheet as a formula.
"""

from __future__ import annotations

import csv
import io
from typing import Any

COLUMNS = (
    "date",
    "conversations",
    "escalated_conversations",
    "messages_in",
    "messages_out",
    "automation_rate",
    "escalations",
    "escalation_rate",
    "fallback_rate",
    "bot_response_p50",
    "bot_response_p90",
    "human_response_p50",
    "human_response_p90",
    "queue_wait_p50",
    "handling_p50",
    "csat_average",
    "csat_count",
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value % 1 else str(int(value))
    return str(value)


def daily_csv(body: dict[str, Any]) -> str:
    """`body` as /api/stats returns it: the days' figures, then escalations by reason."""
    reasons = sorted({r for day in body["days"] for r in day.get("escalations_by_reason", {})})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*COLUMNS, *(f"escalations_{r}" for r in reasons)])
    for day in body["days"]:
        by_reason = day.get("escalations_by_reason", {})
        writer.writerow(
            [_cell(day.get(c)) for c in COLUMNS] + [_cell(by_reason.get(r, 0)) for r in reasons]
        )
    return out.getvalue()
