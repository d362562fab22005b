"""The customer web chat: a page served at `/` and its small JSON API.

A browser keeps a random session id (128 bits from `crypto.getRandomValues`) in
localStorage; that id names the conversation and is the only key to its
history, so a reload shows the conversation again and nobody else can read it.
"""

from bot.channels.webchat.routes import setup

__all__ = ["setup"]
