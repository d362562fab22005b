"""Logging set-up for the service and its libraries.

One formatter renders every log event, whether it comes from the standard
library's `logging` (the bot, aiohttp, Rasa's older modules) or from structlog
(Rasa's newer modules): plain text by default, one JSON object per line with
`BOT_LOG_FORMAT=json`. Values bound for the current turn (request id,
conversation id, channel; see `bind_request` and `bind_turn`) are added to every
event logged while it runs, via contextvars.

Customer text is kept out of the logs: Rasa puts message texts, slot values and
dialogue states in some events' fields; those fields are replaced by
`<hidden>` unless `BOT_LOG_CUSTOMER_TEXT` is on (for debugging only).

Dependencies' warnings are silenced at their source: warnings filters for
every module outside this project, and logger levels for the libraries that
log their internals at INFO or print debug lines of their own (jieba).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
import warnings
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TextIO

import structlog
from aiohttp import web
from structlog.contextvars import bind_contextvars, clear_contextvars
from structlog.typing import EventDict, WrappedLogger

FORMATS = ("text", "json")
HIDDEN = "<hidden>"
# Event fields in which Rasa's structlog events carry what customers wrote (the
# list of rasa.utils.log_utils._anonymizer), plus the bot's own.
CUSTOMER_TEXT_FIELDS = frozenset(
    {
        "text", "response_text", "user_text", "slot_values", "parse_data_text",
        "parse_data_entities", "prediction_events", "tracker_latest_message",
        "prefilled_slots", "message", "response", "slot_candidates", "rasa_event",
        "rasa_events", "tracker_states", "current_states", "old_states", "successes",
        "current_entity", "next_entity", "states", "entity", "token_text", "user_message",
        "json_message",
    }
)  # fmt: skip
# Libraries that narrate their internals at INFO (every action registered, every
# dictionary loaded): at the default level, their warnings and errors are enough.
CHATTY = (
    "jieba",
    "rasa_sdk.executor",
    "rasa.core.processor",
    "rasa.nlu.tokenizers.jieba_tokenizer",
    "rasa.engine",
    "rasa.shared.utils.io",
    "absl",
    "tensorflow",
    "matplotlib",
    "apscheduler",
)
# The fields of a stdlib LogRecord, so that `extra=` values can be told apart.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


NOISE = (DeprecationWarning, PendingDeprecationWarning, FutureWarning, UserWarning)
_OURS = (f"{os.sep}bot{os.sep}", f"{os.sep}actions{os.sep}")


def quiet_dependencies() -> None:
    """Ignore deprecation and user warnings raised from outside this project's code.

    Called before Rasa and TensorFlow are imported: most of these warnings are
    raised while importing them. Libraries add filters of their own when
    imported (`once` for every DeprecationWarning, `always` for some), which
    would win over ours, so the same rule is also applied where warnings are
    shown. Warnings raised in `bot` and `actions` still show.
    """
    outside = r"^(?!bot\b|actions\b|__main__\b)"
    for category in NOISE:
        warnings.filterwarnings("ignore", category=category, module=outside)
    shown = warnings.showwarning

    def showwarning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, NOISE) and not any(part in filename for part in _OURS):
            return
        shown(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning


def _hide_customer_text(show: bool) -> structlog.typing.Processor:
    def processor(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
        if not show:
            for field in CUSTOMER_TEXT_FIELDS.intersection(event):
                event[field] = HIDDEN
        return event

    return processor


def _record_extras(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Copy `extra=` values of a stdlib record into the event."""
    record = event.get("_record")
    if record is not None:
        for name, value in vars(record).items():
            if name not in _RECORD_FIELDS and not name.startswith("_") and name not in event:
                event[name] = value
    return event


def _rasa_event_info(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Rasa's events are named by key (`processor.actions.policy_prediction`) with a
    human sentence in `event_info`: the sentence becomes the message."""
    info = event.pop("event_info", None)
    if info is not None:
        event["event_key"] = event["event"]
        event["event"] = info
    return event


def _render_text(_: WrappedLogger, __: str, event: EventDict) -> str:
    """`time LEVEL logger: message key=value…`, as the bot's logs always read."""
    parts = [
        str(event.pop("timestamp", "")),
        str(event.pop("level", "info")).upper(),
        f"{event.pop('logger', '') or 'rasa'}:",
        str(event.pop("event", "")),
    ]
    exception = event.pop("exception", None)
    parts += [f"{k}={v}" for k, v in event.items()]
    line = " ".join(p for p in parts if p)
    return f"{line}\n{exception}" if exception else line


def _render_json(_: WrappedLogger, __: str, event: EventDict) -> str:
    event.setdefault("logger", "rasa")
    return json.dumps(event, ensure_ascii=False, default=str)


def configure(level: str, fmt: str = "text", show_customer_text: bool = False) -> None:
    """Send every log event, stdlib and structlog alike, through one formatter.

    Rasa's structlog debug events are dropped by level before they are rendered:
    unconfigured, structlog renders each (several per message, with whole
    dialogue states), which costs more CPU than the NLU.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso" if fmt == "json" else "%Y-%m-%d %H:%M:%S"),
        _rasa_event_info,
        _hide_customer_text(show_customer_text),
    ]
    renderer = _render_json if fmt == "json" else _render_text
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[_record_extras, *shared],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
    if numeric > logging.DEBUG:
        for name in CHATTY:
            logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
        # Its style files use pyparsing calls that pyparsing now deprecates.
        logging.getLogger("matplotlib").setLevel(max(numeric, logging.ERROR))
    _tame_jieba(numeric)


def _tame_jieba(level: int) -> None:
    """jieba gives its logger a handler of its own at DEBUG when imported: each
    of its lines came out twice (that handler, then ours). Only ours stays."""
    import jieba

    jieba.default_logger.removeHandler(jieba.log_console)
    jieba.setLogLevel(max(level, logging.WARNING) if level > logging.DEBUG else level)


def log_customer_text(show: bool, text: str) -> str:
    """`text` when BOT_LOG_CUSTOMER_TEXT is on, else a placeholder with its length."""
    return text if show else f"<{len(text)} characters>"


def bind_request(request_id: str | None) -> str:
    """Start a request's log context: a fresh one with only its id (given or new).

    Not undone when the handler returns: aiohttp writes the access log line
    after it, in the same context, and the next request on the connection
    starts afresh.
    """
    clear_contextvars()
    rid = request_id if request_id and len(request_id) <= 64 else uuid.uuid4().hex[:16]
    bind_contextvars(request_id=rid)
    return rid


def bind_turn(conversation: str, channel: str) -> None:
    """Tag what is logged for the rest of this turn with its conversation and channel."""
    bind_contextvars(conversation_id=conversation, channel=channel)


def bound() -> MutableMapping[str, Any]:
    """The values bound for the current request or turn (tests read them)."""
    return structlog.contextvars.get_contextvars()


REQUEST_ID_HEADER = "X-Request-Id"


@web.middleware
async def request_id_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Bind the request's id (the caller's `X-Request-Id`, or a new one) to its log events."""
    rid = bind_request(request.headers.get(REQUEST_ID_HEADER))
    response = await handler(request)
    if not response.prepared:
        response.headers[REQUEST_ID_HEADER] = rid
    return response
