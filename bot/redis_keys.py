"""Every Redis key the service writes, built in one place.

Layout (``P`` is the configured prefix, ``BOT_KEY_PREFIX``, default ``kefu``):

- ``P:tracker:{conversation}``        Rasa's tracker (JSON), written by Rasa's Redis tracker store
- ``P:lock:{conversation}:queue``     conversation lock: waiting tickets, scored by ticket number
- ``P:lock:{conversation}:expiry``    conversation lock: ticket -> expiry (ms, Redis clock)
- ``P:lock:{conversation}:counter``   conversation lock: last ticket issued (the fencing token)
- ``P:conversations``                 sorted set: conversation -> last activity (unix seconds)
- ``P:conv:{conversation}:meta``      hash: channel, first/last activity, message count, last text
- ``P:conv:{conversation}:log``       stream: every inbound and outbound message, in order
- ``P:conv:{conversation}:notes``     list: agents' internal notes (JSON), never shown to customers
- ``P:canned``                        list: canned replies for agents
- ``P:conv:{conversation}:nlu``       hash: inbound entry id -> NLU result (JSON)
- ``P:handoff:{conversation}``        hash: the latest request for a person (reason, text, time)
- ``P:handoff:{conversation}:reasons`` list: every escalation reason code, oldest first
- ``P:handoff:{conversation}:state``  hash: bot, waiting, assigned or closed (handoff/states.py)
- ``P:handoff:waiting``               sorted set: waiting conversations in serving order
- ``P:handoff:waits``                 list: recent queue waiting times (seconds)
- ``P:handoff:assigned``              sorted set: assigned conversations by last agent activity
- ``P:demo:orders``                   hash: the demo order backend's orders (id -> JSON)
- ``P:csat:{conversation}``          hash: satisfaction question status, rating, times
- ``P:csat:ratings``                  stream: every rating given (conversation, rating, time)
- ``P:clarify:{conversation}``       string: the open "which did you mean?" question (JSON)
- ``P:clarify:confirmed``             stream: readings customers chose (conversation, entry, intent)
- ``P:feedback``                      stream: complaints, praise and suggestions, customers' words
- ``P:accounts``                      hash: username -> JSON (bcrypt hash, role, created)
- ``P:session:{sha256(token)}``       string: a signed-in session (JSON: user, role, csrf)
- ``P:login:fail:{who}``              counter: recent failed sign-ins (per address, per user)
- ``P:events``                        pub/sub: events every process must hear (bot/events.py)
- ``P:secret:action_token``           shared secret for the in-app custom action route
- ``P:wechat:token``                  string: WeChat access_token, expiring before WeChat's does
- ``P:wechat:token:lock``             string: held by the one process refreshing the token
- ``P:wechat:msg:{id}``               string: a pushed message claimed (MsgId; user+time for events)
- ``P:wechat:{conversation}:last_in`` string: when the customer last wrote (the 48-hour window)
- ``P:wechat:{conversation}:closed``  string: WeChat said the window is closed (error 45015)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str

    @property
    def tracker_prefix(self) -> str:
        """The prefix handed to Rasa's tracker store (it adds ``:tracker:`` itself)."""
        return self.prefix

    def lock_queue(self, conversation: str) -> str:
        return f"{self.prefix}:lock:{conversation}:queue"

    def lock_expiry(self, conversation: str) -> str:
        return f"{self.prefix}:lock:{conversation}:expiry"

    def lock_counter(self, conversation: str) -> str:
        return f"{self.prefix}:lock:{conversation}:counter"

    @property
    def conversations(self) -> str:
        return f"{self.prefix}:conversations"

    def conv_meta(self, conversation: str) -> str:
        return f"{self.prefix}:conv:{conversation}:meta"

    def conv_log(self, conversation: str) -> str:
        return f"{self.prefix}:conv:{conversation}:log"

    def conv_notes(self, conversation: str) -> str:
        return f"{self.prefix}:conv:{conversation}:notes"

    @property
    def canned(self) -> str:
        return f"{self.prefix}:canned"

    def conv_nlu(self, conversation: str) -> str:
        return f"{self.prefix}:conv:{conversation}:nlu"

    def handoff(self, conversation: str) -> str:
        return f"{self.prefix}:handoff:{conversation}"

    def handoff_state(self, conversation: str) -> str:
        return f"{self.prefix}:handoff:{conversation}:state"

    @property
    def handoff_waiting(self) -> str:
        return f"{self.prefix}:handoff:waiting"

    @property
    def handoff_waits(self) -> str:
        return f"{self.prefix}:handoff:waits"

    @property
    def handoff_assigned(self) -> str:
        return f"{self.prefix}:handoff:assigned"

    def handoff_reasons(self, conversation: str) -> str:
        return f"{self.prefix}:handoff:{conversation}:reasons"

    @property
    def demo_orders(self) -> str:
        return f"{self.prefix}:demo:orders"

    def csat(self, conversation: str) -> str:
        return f"{self.prefix}:csat:{conversation}"

    @property
    def csat_ratings(self) -> str:
        return f"{self.prefix}:csat:ratings"

    def clarify(self, conversation: str) -> str:
        return f"{self.prefix}:clarify:{conversation}"

    @property
    def clarify_confirmed(self) -> str:
        return f"{self.prefix}:clarify:confirmed"

    @property
    def feedback(self) -> str:
        return f"{self.prefix}:feedback"

    @property
    def accounts(self) -> str:
        return f"{self.prefix}:accounts"

    def session(self, token_digest: str) -> str:
        return f"{self.prefix}:session:{token_digest}"

    def login_failures(self, who: str) -> str:
        return f"{self.prefix}:login:fail:{who}"

    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    @property
    def action_token(self) -> str:
        return f"{self.prefix}:secret:action_token"

    @property
    def wechat_token(self) -> str:
        return f"{self.prefix}:wechat:token"

    @property
    def wechat_token_lock(self) -> str:
        return f"{self.prefix}:wechat:token:lock"

    def wechat_message(self, message_key: str) -> str:
        return f"{self.prefix}:wechat:msg:{message_key}"

    def wechat_last_inbound(self, conversation: str) -> str:
        return f"{self.prefix}:wechat:{conversation}:last_in"

    def wechat_window_closed(self, conversation: str) -> str:
        return f"{self.prefix}:wechat:{conversation}:closed"
