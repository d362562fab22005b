"""Logging set-up for the service and its libraries."""

from __future__ import annotations

import logging

import structlog


def configure(level: str) -> None:
    """Standard logging at `level`, and Rasa's structlog events filtered to the same level.

    Unconfigured, structlog prints every debug event Rasa emits (several per
    message, with whole dialogue states), which costs more CPU than the NLU.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    logging.basicConfig(level=numeric, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
