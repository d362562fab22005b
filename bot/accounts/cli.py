"""`python -m bot users add|passwd|disable|enable|delete|list|team`: accounts from the command line.

`team NAME --capacity N --teams 售前,售后` sets how many conversations the
agent holds at once and which teams (nlu_data/teams.yml) they answer for.

Changing a password, disabling and deleting an account end all of its
sessions at once; the last active admin can be neither disabled nor deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from bot.accounts.store import ROLES, AccountError, Accounts
from bot.handoff.presence import Presence
from bot.handoff.teams import TeamFileError, TeamMap
from bot.redis_connection import connect
from bot.redis_keys import Keys
from bot.settings import Settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    users = sub.add_parser(
        "users", help="add, disable, enable or delete accounts, change passwords, list them"
    )
    commands = users.add_subparsers(dest="users_command", required=True)
    add = commands.add_parser("add", help="add an account")
    add.add_argument("username")
    add.add_argument("--role", choices=ROLES, default="agent")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    passwd = commands.add_parser("passwd", help="set an account's password")
    passwd.add_argument("username")
    passwd.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    for name, what in (
        ("disable", "refuse the account's sign-ins and end its sessions"),
        ("enable", "allow a disabled account to sign in again"),
        ("delete", "remove the account and end its sessions"),
    ):
        commands.add_parser(name, help=what).add_argument("username")
    commands.add_parser("list", help="list accounts and roles")
    team = commands.add_parser("team", help="set an agent's capacity and teams")
    team.add_argument("username")
    team.add_argument("--capacity", type=int, help="conversations at once (default: setting)")
    team.add_argument("--teams", default="", help="comma-separated teams from teams.yml")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise AccountError("the two passwords differ")
    return first


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    redis = connect(settings)
    keys = Keys(settings.key_prefix)
    accounts = Accounts(redis, keys, rounds=settings.bcrypt_rounds)
    try:
        if args.users_command == "list":
            for account in await accounts.list():
                state = "\tdisabled" if account.disabled else ""
                print(f"{account.username}\t{account.role}{state}")
        elif args.users_command == "add":
            account = await accounts.add(args.username, _password(args.password_stdin), args.role)
            print(f"added {account.username} ({account.role})")
        elif args.users_command == "passwd":
            await accounts.set_password(args.username, _password(args.password_stdin))
            print(f"password of {args.username} changed; its sessions are signed out")
        elif args.users_command == "disable":
            await accounts.disable(args.username)
            print(f"{args.username} disabled; its sessions are signed out")
        elif args.users_command == "team":
            agent = await accounts.get(args.username)
            if agent is None or agent.role not in ("agent", "admin"):
                raise AccountError(f"no agent account {args.username!r}")
            if args.capacity is not None and args.capacity < 0:
                raise AccountError("capacity is 0 or more")
            wanted = [t.strip() for t in args.teams.split(",") if t.strip()]
            teams = TeamMap.load(settings.teams_file).check(wanted)
            # The roster only (no conversation changes hands): the running bot
            # assigns by it from its next sweep on.
            roster = Presence(redis, keys, settings.agent_capacity)
            await roster.set_roster(agent.username, args.capacity, teams)
            room = args.capacity if args.capacity is not None else settings.agent_capacity
            print(f"{agent.username}: {room} at once, teams {', '.join(teams) or '(any)'}")
        elif args.users_command == "enable":
            await accounts.enable(args.username)
            print(f"{args.username} enabled")
        else:
            await accounts.delete(args.username)
            print(f"{args.username} deleted; its sessions are signed out")
        return 0
    finally:
        await redis.close()


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return asyncio.run(_run(args, settings))
    except (AccountError, TeamFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
