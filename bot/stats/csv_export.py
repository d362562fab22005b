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


# Per channel, the columns `<figure>_<channel>`.
CHANNEL_FIGURES = ("conversations", "messages_in", "messages_out", "escalations", "handoffs")


def daily_csv(body: dict[str, Any]) -> str:
    """`body` as /api/stats returns it: the days' figures, then escalations by reason,
    the figures of each channel and the conversations each campaign source brought."""
    days = body["days"]
    reasons = sorted({r for day in days for r in day.get("escalations_by_reason", {})})
    channels = list(body["total"].get("by_channel", {}))
    sources = [row["source"] for row in body["total"].get("by_source", [])]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        [
            *COLUMNS,
            *(f"escalations_{r}" for r in reasons),
            *(f"{f}_{c}" for c in channels for f in CHANNEL_FIGURES),
            *(f"conversations_source_{s}" for s in sources),
        ]
    )
    for day in days:
        by_reason = day.get("escalations_by_reason", {})
        by_channel = day.get("by_channel", {})
        by_source = {row["source"]: row["conversations"] for row in day.get("by_source", [])}
        writer.writerow(
            [_cell(day.get(c)) for c in COLUMNS]
            + [_cell(by_reason.get(r, 0)) for r in reasons]
            + [_cell(by_channel.get(c, {}).get(f, 0)) for c in channels for f in CHANNEL_FIGURES]
            + [_cell(by_source.get(s, 0)) for s in sources]
        )
    return out.getvalue()


# The per-agent CSV (admins, `by=agent`): one row per agent over the range.
AGENT_COLUMNS = (
    "agent",
    "status",
    "load",
    "capacity",
    "handled",
    "transferred",
    "first_responses",
    "first_response_p50",
    "first_response_p90",
    "first_responses_within_target",
    "first_response_share_within_target",
    "handling_p50",
    "handling_p90",
    "csat_count",
    "csat_average",
)


def agents_csv(body: dict[str, Any]) -> str:
    """`body["by_agent"]` (as /api/stats gives admins) as rows.

    Agents' names are account names (letters, digits, ``_.-``); one starting
    with ``-`` is quoted so no spreadsheet reads it as a formula.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(AGENT_COLUMNS)
    for name, figures in body.get("by_agent", {}).items():
        sla = figures["service_level"]
        row = {
            **figures,
            "agent": f"'{name}" if name.startswith(("=", "+", "-", "@")) else name,
            "first_responses_within_target": sla["within"],
            "first_response_share_within_target": sla["share"],
        }
        writer.writerow([_cell(row.get(c)) for c in AGENT_COLUMNS])
    return out.getvalue()
