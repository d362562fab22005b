"""Conversation ids: assigned by the server, one scheme for every channel.

A conversation id is ``<channel>:<the channel's own id for the customer>``:
``rest:u1`` (the REST caller's ``sender``), ``webchat:<session>`` (a session the
server issued), ``wechat:<openid>`` (WeChat's id of the follower),
``wecomkf:<open_kfid>/<external_userid>`` (WeChat Customer Service: the customer
is known per kf account, so both ids, each percent-encoded, make the user part;
`joined` / `split`). Only the
server joins the two parts, from the channel a message actually arrived on, so a
caller of one channel can never name a conversation of another: a REST sender
``wechat:oAbc`` becomes ``rest:wechat:oAbc``, a conversation of its own.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

SEPARATOR = ":"


def conversation_id(channel: str, user_id: str) -> str:
    """The conversation of `user_id` on `channel`."""
    if not channel or SEPARATOR in channel:
        raise ValueError(f"not a channel name: {channel!r}")
    if not user_id:
        raise ValueError("a conversation needs the channel's id for the customer")
    return f"{channel}{SEPARATOR}{user_id}"


def channel_of(conversation: str) -> str:
    """The channel a conversation belongs to ('' for an id of no channel)."""
    channel, sep, _ = conversation.partition(SEPARATOR)
    return channel if sep else ""


def user_of(conversation: str) -> str:
    """The channel's own id for the customer (a WeChat openid, a REST sender…)."""
    return conversation.partition(SEPARATOR)[2]


def joined(*parts: str) -> str:
    """One user id made of several of the platform's ids (``a/b``), each percent-encoded."""
    if not parts or not all(parts):
        raise ValueError("every part of a compound user id must be non-empty")
    return "/".join(quote(part, safe="") for part in parts)


def split(user_id: str) -> list[str]:
    """The parts of a `joined` user id."""
    return [unquote(part) for part in user_id.split("/")]
