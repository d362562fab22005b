"""Command line: `kefu COMMAND` (the installed script) or `python -m bot COMMAND`.

Commands (names in brackets are aliases that match Rasa's habits):

  serve [run]              serve the bot: web chat, REST webhook, console, review, stats
  shell [--nlu] [--name N] chat in the terminal through the real chat service; after
                           each reply, the intent, confidence, runner-up, entities and
                           the action that answered; --nlu only parses
  train [--if-needed]      train, score on the held-out file, promote, reload running bots
  reload                   tell running bots to serve the promoted model
  evaluate [test nlu]      evaluate on the held-out file, write reports/
  data validate            Rasa's validator and this project's data checks
  users add|passwd|list    accounts of agents, trainers and admins
  export CONVERSATION      print everything kept about one conversation as JSON (PIPL copy)
  forget CONVERSATION      erase it everywhere (asks to confirm; --yes skips the question)
  seed-demo-orders         put the demo order backend's sample orders in Redis
  migrate-keys [--dry-run] move keys of an older layout to their current names (every
                           bot does it at start-up; this runs it first, or again)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bot.accounts.cli import add_parser as add_users_parser
from bot.customer_data.cli import add_parser as add_customer_data_parser
from bot.logs import configure as configure_logging
from bot.logs import quiet_dependencies
from bot.settings import Settings, SettingsError


def _quiet_libraries() -> None:
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# How long a thread may hold the GIL while another waits for it (Python's
# default is 5 ms). The event loop shares the process with the dialogue and NLU
# threads and gives the GIL up at every socket call: with long predictions
# running (a form in a long conversation), each of those cost it up to 5 ms
# and its turns stalled over 20 ms. At 1 ms: the same throughput, about half
# the stalls (README, "Benchmark").
GIL_SWITCH_SECONDS = 0.001


def serve(settings: Settings) -> None:
    from aiohttp import web

    from bot.app import create_app
    from bot.startup import access_log, announce

    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        reuse_port=True,
        access_log=access_log(settings),
        print=lambda *_: announce(settings),
    )


def migrate_keys(settings: Settings, dry_run: bool) -> int:
    import asyncio

    from redis.exceptions import RedisError

    from bot import redis_connection
    from bot.migrations import KeyMigration
    from bot.redis_keys import Keys

    async def run() -> str:
        redis = redis_connection.connect(settings)
        try:
            migration = KeyMigration(redis, Keys(settings.key_prefix))
            report = await migration.locked(dry_run=dry_run)
        finally:
            await redis.close(close_connection_pool=True)
        lines = [report.summary()]
        for outcome, pairs in report.examples.items():
            lines += [f"  {outcome}: {old} -> {new}" for old, new in pairs]
        return "\n".join(lines)

    try:
        print(asyncio.run(run()))
    except (RedisError, OSError) as exc:
        print(f"could not reach Redis: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kefu", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "serve", aliases=["run"], help="serve the bot (web chat, REST webhook, admin API)"
    )
    shell = sub.add_parser("shell", help="chat with the bot in the terminal")
    shell.add_argument("--nlu", action="store_true", help="only parse: intent and entities")
    shell.add_argument(
        "--name", default="trainer", help="conversation shell:NAME (default: trainer)"
    )
    data = sub.add_parser("data", help="training data tools")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    validate = data_sub.add_parser("validate", help="Rasa's validator and the project's checks")
    validate.add_argument("--root", type=Path, default=Path("."), help="project folder")
    test = sub.add_parser("test", help="`test nlu`: the same as evaluate")
    test.add_argument("what", choices=["nlu"])
    train = sub.add_parser("train", help="train the Rasa model from config.yml and nlu_data/")
    train.add_argument(
        "--if-needed", action="store_true", help="skip when an up-to-date model exists"
    )
    train.add_argument("--root", type=Path, default=Path("."), help="project folder (default: .)")
    train.add_argument(
        "--no-gate", action="store_true", help="train only: do not score, promote or reload"
    )
    sub.add_parser("reload", help="tell running bots to serve the promoted model")
    add_users_parser(sub)
    add_customer_data_parser(sub)
    sub.add_parser("seed-demo-orders", help="put the demo order backend's sample orders in Redis")
    migrate = sub.add_parser(
        "migrate-keys", help="move keys of an older layout to their current names"
    )
    migrate.add_argument(
        "--dry-run", action="store_true", help="only count what would be moved or merged"
    )
    evaluate = sub.add_parser("evaluate", help="evaluate on the held-out file, write reports/")
    for command in (evaluate, test):
        command.add_argument(
            "--root", type=Path, default=Path("."), help="project folder (default: .)"
        )
        command.add_argument(
            "--quick",
            action="store_true",
            help="skip the normaliser comparison and the cross-validation",
        )
    args = parser.parse_args(argv)
    args.command = {"run": "serve", "test": "evaluate"}.get(args.command, args.command)

    quiet_dependencies()
    _quiet_libraries()
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    level = settings.log_level
    if args.command == "shell" and level != "DEBUG":
        level = "WARNING"  # the conversation is the output
    configure_logging(level, settings.log_format, settings.log_customer_text)
    if args.command == "serve":
        if settings.workers > 1:
            from bot.workers import supervise

            return supervise(settings.workers, settings.metrics_dir)
        serve(settings)
        return 0
    if args.command == "users":
        from bot.accounts.cli import run as run_users

        return run_users(args, settings)
    if args.command in ("export", "forget"):
        from bot.customer_data.cli import run as run_customer_data

        return run_customer_data(args, settings)
    if args.command == "seed-demo-orders":
        import asyncio

        from bot.orders.demo import seed_demo_orders

        count = asyncio.run(seed_demo_orders(settings))
        print(f"{count} sample orders in Redis (ORDER_BACKEND=demo)")
        return 0
    if args.command == "migrate-keys":
        return migrate_keys(settings, args.dry_run)
    if args.command == "shell":
        from bot.shell import run as run_shell

        return run_shell(settings, args.name, args.nlu)
    if args.command == "data":
        from bot.nlu.data_check import run as run_data_check

        return run_data_check(args.root.resolve())
    if args.command == "evaluate":
        from bot.evaluation import run as run_evaluation
        from bot.evaluation import steps
        from bot.progress import Progress

        progress = Progress(steps(not args.quick, not args.quick), "evaluate")
        result = run_evaluation(
            args.root.resolve(),
            settings.model_dir.resolve(),
            compare_normalizer=not args.quick,
            cross_validate=not args.quick,
            progress=progress,
        )
        progress.close()
        print(result["summary"])
        return 0 if result["targets_met"] else 1
    if args.command == "reload":
        from bot.retrain.cli import run_reload

        return run_reload(settings)
    from bot.retrain.cli import run_train

    return run_train(args.root.resolve(), settings, args.if_needed, use_gate=not args.no_gate)
