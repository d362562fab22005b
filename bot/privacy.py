"""Masking personal numbers in what is written to the log (`BOT_MASK_PII`).

Mainland mobile numbers keep their first three and last four digits
(``138****5678``), resident ID numbers their first six and last four
(``110105********123X``), e-mail addresses their first character and domain
(``z***@example.com``). Only the log, the review index and what agents see
are masked; the NLU reads the message as the customer wrote it.
"""

from __future__ import annotations

import re

# Not inside a longer run of digits (an order number is 12-20 digits).
PHONE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?(1[3-9]\d)[- ]?(\d{4})[- ]?(\d{4})(?!\d)")
# Region (6 digits), birth date (YYYYMMDD), sequence and check digit: an
# 18-digit order number is not taken for one unless its middle reads as a date.
ID_CARD = re.compile(
    r"(?<![\dA-Za-z])([1-9]\d{5})((?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))"
    r"(\d{3}[\dXx])(?![\dA-Za-z])"
)
EMAIL = re.compile(r"(?<![\w.+-])([\w.+-])[\w.+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")


def mask(text: str) -> str:
    text = ID_CARD.sub(lambda m: f"{m[1]}{'*' * 8}{m[3]}", text)
    text = PHONE.sub(lambda m: f"{m[1]}****{m[3]}", text)
    return EMAIL.sub(lambda m: f"{m[1]}***@{m[2]}", text)


def keep(text: str) -> str:
    return text
