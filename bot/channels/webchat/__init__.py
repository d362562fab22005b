"""The customer web chat: a page served at `/` and its small JSON API.

The server issues each visitor a session in a signed HttpOnly cookie
(webchat/sessions.py); that session names the conversation and is the only key
to its history and live replies, so a reload shows the conversation again and
nobody else can read it. Each message carries a fresh id, sent again on a
retry, so a message is answered once however often the network makes the
browser send it.
"""

from bot.channels.webchat.routes import setup

__all__ = ["setup"]
