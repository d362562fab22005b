"""`kefu export CONVERSATION` and `kefu forget CONVERSATION [--yes]` (PIPL requests)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys

from bot.redis_connection import connect
from bot.redis_keys import Keys
from bot.settings import Settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser(
        "export", help="print everything kept about one conversation as JSON (PIPL copy)"
    )
    export.add_argument("conversation", help="conversation id, e.g. wechat:oAbc… or rest:u1")
    forget = sub.add_parser("forget", help="erase one conversation everywhere (PIPL deletion)")
    forget.add_argument("conversation", help="conversation id, e.g. wechat:oAbc… or rest:u1")
    forget.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in a bare container
        return "cli"


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here, not at the top: `kefu --help` and every other command start
    # without the NLU's dictionaries (and their import-time warnings).
    from bot.content.knowledge import KnowledgeBase
    from bot.conversation_log.store import ConversationLog
    from bot.customer_data.audit import ERASE, EXPORT, AuditLog
    from bot.customer_data.store import CustomerData
    from bot.review.index import ReviewIndex
    from bot.stats.metrics import Metrics
    from bot.stats.recorder import Stats

    redis = connect(settings)
    try:
        keys = Keys(settings.key_prefix)
        timezone = KnowledgeBase.load(
            settings.knowledge_file, settings.knowledge_max_age_days
        ).hours.timezone
        stats = Stats(redis, keys, timezone, settings.retention_days, Metrics())
        audit = AuditLog(redis, keys)
        data = CustomerData(
            redis, keys, ConversationLog(redis, keys), ReviewIndex(redis, keys), stats, audit
        )
        conversation = args.conversation
        if not await data.exists(conversation):
            print(f"no conversation {conversation!r} (ids look like rest:u1)", file=sys.stderr)
            return 1
        if args.command == "export":
            await audit.record(_who(), EXPORT, "cli", conversation)
            print(json.dumps(await data.export(conversation), ensure_ascii=False, indent=2))
            return 0
        record = await data.forget(conversation, by=_who())
        await audit.record(_who(), ERASE, "cli", conversation)
        print(
            f"erased {conversation}: {record['keys']} keys, {record['messages']} messages, "
            f"{record['stream_entries']} feedback and rating entries (record {record['id']})"
        )
        return 0
    finally:
        await redis.close()


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "forget" and not args.yes:
        if not sys.stdin.isatty():
            print("not erased: confirm with --yes when not on a terminal", file=sys.stderr)
            return 2
        answer = input(f"Erase everything kept about {args.conversation}? Type its id to confirm: ")
        if answer.strip() != args.conversation:
            print("not erased", file=sys.stderr)
            return 1
    return asyncio.run(_run(args, settings))
