"""JSON responses that keep Chinese readable (no \\uXXXX escapes)."""

from __future__ import annotations

import functools
import json
from typing import Any

from aiohttp import web


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


json_response = functools.partial(web.json_response, dumps=dumps)
