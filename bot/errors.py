"""Errors a caller can cause become a 4xx with a JSON body; ours become a logged 5xx."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler
from redis.exceptions import RedisError

from bot.jsonutil import json_response

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """A refusal with a stable machine-readable code and a human message."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class ServiceUnavailable(ApiError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(503, code, message)


def error_body(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return json_response(
        {"error": code, "message": message, "status": status}, status=status, headers=headers
    )


def _code_for(exc: web.HTTPException) -> str:
    return (exc.reason or "error").lower().replace(" ", "_").replace("-", "_")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into JSON, log it, and never leak a stack trace."""
    try:
        return await handler(request)
    except ApiError as exc:
        log = logger.error if exc.status_code >= 500 else logger.warning
        log(
            "%s %s -> %s %s: %s",
            request.method,
            request.path,
            exc.status_code,
            exc.code,
            exc.message,
        )
        return error_body(exc.status_code, exc.code, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status_code < 400:
            raise
        message = (
            exc.text if exc.text and not exc.text.startswith(f"{exc.status_code}:") else exc.reason
        )
        logger.warning("%s %s -> %s: %s", request.method, request.path, exc.status_code, message)
        return error_body(exc.status_code, _code_for(exc), message or exc.reason)
    except RedisError as exc:
        logger.error("%s %s -> 503: Redis unavailable: %r", request.method, request.path, exc)
        return error_body(
            503,
            "storage_unavailable",
            "The conversation store (Redis) is not reachable; please retry shortly.",
        )
    except Exception:
        logger.exception("%s %s -> 500: unexpected error", request.method, request.path)
        return error_body(
            500, "internal_error", "Something went wrong on our side; it has been logged."
        )
