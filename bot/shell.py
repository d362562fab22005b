"""`kefu shell`: chat with the bot in a terminal, through the real chat service.

Stock `rasa shell` talks to Rasa alone; this one starts the application's
services the way `kefu serve` does (its cleanup contexts: Redis, the model, the
knowledge, the handoff queue, the actions), without serving HTTP, and sends
each line through `ChatService.handle` as a message of the channel `shell`. So
what a trainer sees here is what a customer would get: knowledge answers,
handoff, masking in the log, the served model. After each reply it prints what
the bot understood (intent, confidence, runner-up, entities) and which action
answered. `--nlu` only parses: nothing is logged and the dialogue is not run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable
from typing import Any, TextIO

from aiohttp import web

from bot.app import create_app
from bot.app_keys import CHAT, CONVERSATION_LOG, MODEL
from bot.channels.identity import conversation_id
from bot.chat.service import TurnReply
from bot.settings import Settings

CHANNEL = "shell"
PROMPT = "你: "
QUIT = ("/exit", "/quit", "/q")
MODEL_WAIT_SECONDS = 120.0


class Style:
    """ANSI colours on a terminal, nothing otherwise."""

    def __init__(self, out: TextIO) -> None:
        self.on = out.isatty()

    def dim(self, text: str) -> str:
        return f"\033[2m{text}\033[0m" if self.on else text

    def bold(self, text: str) -> str:
        return f"\033[1m{text}\033[0m" if self.on else text


def describe_parse(parse: dict[str, Any]) -> str:
    """`intent greet 0.97 · runner-up thank 0.02 · entities order_id=123…`."""
    intent = parse.get("intent") or {}
    name = intent.get("name") or "—"
    confidence = float(intent.get("confidence") or 0.0)
    ranking = parse.get("intent_ranking") or parse.get("ranking") or []
    runner = next((r for r in ranking if r.get("name") != name), None)
    parts = [f"intent {name} {confidence:.2f}"]
    parts.append(
        f"runner-up {runner['name']} {float(runner.get('confidence') or 0.0):.2f}"
        if runner
        else "runner-up —"
    )
    entities = parse.get("entities") or []
    parts.append(
        "entities " + (", ".join(f"{e.get('entity')}={e.get('value')}" for e in entities) or "—")
    )
    return " · ".join(parts)


def describe_turn(turn: TurnReply, nlu: dict[str, Any] | None) -> str:
    """What the bot understood and which action(s) answered."""
    if nlu is not None:
        understood = describe_parse(
            {
                "intent": {"name": nlu.get("intent"), "confidence": nlu.get("confidence")},
                "intent_ranking": nlu.get("intent_ranking") or [],
                "entities": nlu.get("entities") or [],
            }
        )
    else:
        understood = describe_parse(
            {"intent": {"name": turn.intent, "confidence": turn.confidence}}
        )
    actions = [r.action or r.response or "?" for r in turn.replies]
    answered = "action " + (", ".join(dict.fromkeys(actions)) if actions else "— (no reply)")
    state = f" · with people ({turn.state})" if turn.state in ("waiting", "assigned") else ""
    return f"{understood} · {answered}{state}"


async def _wait_for_model(app: web.Application) -> None:
    slot = app[MODEL]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + MODEL_WAIT_SECONDS
    while slot.engine is None:
        if slot.error and slot.error != "waiting for Redis":
            raise RuntimeError(slot.error)
        if loop.time() > deadline:
            raise RuntimeError("the model did not load in time")
        await asyncio.sleep(0.1)


async def chat(
    settings: Settings,
    name: str,
    nlu_only: bool,
    read: Callable[[str], str] = input,
    out: TextIO = sys.stdout,
) -> int:
    """Start the app's services, then answer lines from `read` until EOF or /exit."""
    style = Style(out)
    # No webhook is served here: its "open to anyone" warning would only mislead.
    logging.getLogger("bot.channels.rest").setLevel(logging.ERROR)
    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()  # runs every cleanup context: the same services as `kefu serve`
    try:
        print(style.dim("loading the model…"), file=out, flush=True)
        await _wait_for_model(app)
        engine = app[MODEL].require()
        conversation = conversation_id(CHANNEL, name)
        mode = "NLU only (nothing logged)" if nlu_only else f"conversation {conversation}"
        print(
            style.dim(f"model {engine.version} · {mode} · /exit or Ctrl-D to quit"),
            file=out,
            flush=True,
        )
        while True:
            try:
                line = await asyncio.to_thread(read, PROMPT)
            except EOFError:
                print(file=out)
                break
            text = line.strip()
            if not text:
                continue
            if text in QUIT:
                break
            if nlu_only:
                parse = engine.parse(text)
                print(style.dim("   " + describe_parse(parse)), file=out, flush=True)
                continue
            turn = await app[CHAT].handle(CHANNEL, conversation, text)
            for reply in turn.replies:
                print(style.bold("客服: ") + reply.text, file=out)
                for button in reply.payload.get("buttons") or []:
                    print(f"      [{button.get('title')}]", file=out)
            if not turn.replies:
                print(style.dim("(the bot stays silent: people have this conversation)"), file=out)
            nlu = await _nlu_of(app, conversation, turn.inbound_id)
            print(style.dim("   " + describe_turn(turn, nlu)), file=out, flush=True)
    finally:
        await runner.cleanup()
    return 0


async def _nlu_of(app: web.Application, conversation: str, entry: str) -> dict[str, Any] | None:
    """The NLU result logged with the inbound entry (with its ranking and entities)."""
    for item in await app[CONVERSATION_LOG].timeline(conversation):
        if item["id"] == entry:
            return item
    return None


def run(settings: Settings, name: str, nlu_only: bool) -> int:
    """The `kefu shell` command."""
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (line editing and history for input())
    try:
        return asyncio.run(chat(settings, name, nlu_only))
    except KeyboardInterrupt:
        print()
        return 0
    except RuntimeError as exc:
        print(f"kefu shell: {exc}", file=sys.stderr)
        return 1
