"""What the customer is told when the bot itself failed to handle a message."""

from __future__ import annotations

import random

APOLOGIES = (
    "抱歉，我这边出了点问题，没能处理好你的消息。你可以再发一次，或者回复“人工”找客服同事。",
    "不好意思，系统刚才出了点状况，你的消息我们已经收到。可以稍后再试，或者回复“人工”找客服同事。",
)


def apology() -> str:
    return random.choice(APOLOGIES)
