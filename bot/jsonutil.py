"""JSON in and out: responses that keep Chinese readable (no \\uXXXX escapes), and
parsing of what strangers send that can fail only with a ValueError."""

from __future__ import annotations

import functools
import json
from typing import Any

from aiohttp import web


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


json_response = functools.partial(web.json_response, dumps=dumps)


def loads(text: str | bytes) -> Any:
    """`json.loads`, with nesting too deep for the parser (``[[[[…``) a ValueError too.

    The standard parser recurses once per level and raises RecursionError
    after about a thousand; that is the caller's fault, not ours.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def depth(value: Any, limit: int) -> int:
    """How deeply `value` nests (a scalar is 0), counting no further than `limit` + 1."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            level += 1
            deepest = max(deepest, level)
            if level > limit:
                return level
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level) for child in children)
    return deepest
