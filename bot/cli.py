"""Command line: `python -m bot serve | train`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from bot.accounts.cli import add_parser as add_users_parser
from bot.logs import configure as configure_logging
from bot.settings import Settings, SettingsError


def _quiet_libraries() -> None:
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def serve(settings: Settings) -> None:
    from aiohttp import web

    from bot.app import create_app

    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        reuse_port=True,
        print=lambda *_: logging.getLogger("bot").info(
            "serving on http://%s:%s (web chat at /)", settings.host, settings.port
        ),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kefu", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="serve the bot (web chat, REST webhook, admin API)")
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
    sub.add_parser("seed-demo-orders", help="put the demo order backend's sample orders in Redis")
    evaluate = sub.add_parser("evaluate", help="evaluate on the held-out file, write reports/")
    evaluate.add_argument(
        "--root", type=Path, default=Path("."), help="project folder (default: .)"
    )
    evaluate.add_argument(
        "--quick",
        action="store_true",
        help="skip the normaliser comparison and the cross-validation",
    )
    args = parser.parse_args(argv)

    _quiet_libraries()
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if args.command == "serve":
        if settings.workers > 1:
            from bot.workers import supervise

            return supervise(settings.workers, settings.metrics_dir)
        serve(settings)
        return 0
    if args.command == "users":
        from bot.accounts.cli import run as run_users

        return run_users(args, settings)
    if args.command == "seed-demo-orders":
        import asyncio

        from bot.orders.demo import seed_demo_orders

        count = asyncio.run(seed_demo_orders(settings))
        print(f"{count} sample orders in Redis (ORDER_BACKEND=demo)")
        return 0
    if args.command == "evaluate":
        from bot.evaluation import run as run_evaluation

        result = run_evaluation(
            args.root.resolve(),
            settings.model_dir.resolve(),
            compare_normalizer=not args.quick,
            cross_validate=not args.quick,
        )
        print(result["summary"])
        return 0 if result["targets_met"] else 1
    if args.command == "reload":
        from bot.retrain.cli import run_reload

        return run_reload(settings)
    from bot.retrain.cli import run_train

    return run_train(args.root.resolve(), settings, args.if_needed, use_gate=not args.no_gate)
