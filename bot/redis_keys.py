"""Every Redis key the service writes, built in one place.

``P`` is the configured prefix (``BOT_KEY_PREFIX``, default ``kefu``). Two families:

**One conversation's keys** live under ``P:c:{<id>}:``, where ``<id>`` is the
conversation id (``<channel>:<user id>``, see ``bot/channels/identity.py``) with
``%``, braces, glob characters, spaces and non-ASCII percent-encoded. So:

- no conversation id can produce a shared key: shared keys never start with ``P:c:``;
- no conversation's keys can start with another's ``P:c:{<id>}:`` (an encoded id
  has no ``}``), so deleting or scanning one conversation never touches another;
- the braces are a Redis Cluster hash tag: a conversation's keys share one slot,
  so every script and transaction about one conversation stays on one node.

- ``P:c:{id}:tracker``          Rasa's tracker (JSON), written by our tracker store
- ``P:c:{id}:lock:queue``       conversation lock: waiting tickets, scored by ticket number
- ``P:c:{id}:lock:expiry``      conversation lock: ticket -> expiry (ms, Redis clock)
- ``P:c:{id}:lock:counter``     conversation lock: last ticket issued (the fencing token)
- ``P:c:{id}:meta``             hash: channel, first/last activity, message count, last text
- ``P:c:{id}:log``              stream: every inbound and outbound message, in order
- ``P:c:{id}:notes``            list: agents' internal notes (JSON), never shown to customers
- ``P:c:{id}:nlu``              hash: inbound entry id -> NLU result (JSON)
- ``P:c:{id}:msg:{message id}`` string: a client message id seen, its turn's state and replies
- ``P:c:{id}:handoff``          hash: the latest request for a person (reason, text, time)
- ``P:c:{id}:handoff:reasons``  list: every escalation reason code, oldest first
- ``P:c:{id}:csat``             hash: satisfaction question status, rating, times
- ``P:c:{id}:clarify``          string: the bot's open "which did you mean?" question (JSON)
- ``P:c:{id}:wechat:last_in``   string: when the customer last wrote (the 48-hour window)
- ``P:c:{id}:wechat:closed``    string: WeChat said the window is closed (error 45015)
- ``P:c:{id}:wechat:msg:{key}`` string: a pushed message claimed (MsgId; time+event for events)
- ``P:c:{id}:wecomkf:last_in``  string: when the WeChat Customer Service customer last wrote
  (expires with the 48-hour window)
- ``P:c:{id}:wecomkf:sent``     string: messages sent since then (WeCom allows five)
- ``P:c:{id}:wecomkf:msg:{msgid}`` string: a pulled message (kf/sync_msg msgid): the owner of
  its lease while it is handled, ``done`` once answered
- ``P:c:{id}:wecomkf:servicer`` string: handed to a WeCom servicer (kf/service_state/trans)
- ``P:c:{id}:weibo:last_in``    string: when the customer last wrote (Weibo's 48-hour window)
- ``P:c:{id}:weibo:closed``     string: the customer unfollowed, or Weibo refused a reply
- ``P:c:{id}:weibo:msg:{key}``  string: a pushed message claimed (created_at + digest of the push)
- ``P:c:{id}:rl``               hash: the conversation's message rate (GCRA), expiring by itself
- ``P:c:{id}:alerts``           hash: group-robot alerts sent about it (threshold and stay -> time)

**One conversation's key on a feature's slot**: the handoff state must change
in one step with the shared queues, so it lives under the handoff feature's
hash tag, not the conversation's. Its id is framed in braces (encoded, so it
has none of its own) so that no conversation's key can start with another's;
Redis hashes only the first braces, ``{handoff}``.

- ``P:{handoff}:state:{id}``    hash: bot, waiting, assigned or closed (handoff/states.py)

``conversation_keys()`` lists it with the others, so retention and erasure
delete it; a SCAN of ``P:c:{id}:*`` does not find it (``off_tag_keys()``).

**Shared keys** (never ``P:c:…``). A feature whose script, transaction or
multi-key command joins several of its keys puts them all under one hash tag
(``{handoff}``, ``{stats}``, ``{rv}``, ``{<address>}`` of the sign-in throttle):
one Cluster slot per feature, so those commands stay legal on Redis Cluster
(tests/test_cluster_slots.py).

- ``P:conversations``           sorted set: conversation -> last activity (unix seconds)
- ``P:canned``                  list: canned replies for agents
- ``P:{handoff}:waiting``       sorted set: waiting conversations in serving order
- ``P:{handoff}:waits``         list: recent queue waiting times (seconds)
- ``P:{handoff}:assigned``      sorted set: assigned conversations by last agent activity
- ``P:{handoff}:load``          hash: agent -> conversations they hold now (the transitions keep it)
- ``P:{handoff}:given``         hash: agent -> when they were last given a conversation
- ``P:{handoff}:presence``      hash: agent -> online, away or offline
- ``P:{handoff}:live``          sorted set: agent -> until when a console of theirs is open
- ``P:{handoff}:consoles:<agent>`` sorted set: process -> until when its console counts
- ``P:{handoff}:capacity``      hash: agent -> how many conversations they may hold at once
- ``P:{handoff}:teams``         hash: agent -> JSON list of their teams (what the admin set)
- ``P:{handoff}:agents``        set: every agent on the roster (the team of unmapped escalations)
- ``P:{handoff}:team:<team>``   set: the agents of one team (team name percent-encoded)
- ``P:{handoff}:alert:queue``   string: the group robot was told the queue is long (until shorter)
  All ``P:{handoff}:…`` keys are built by ``Keys.handoff_shared``: the automatic
  assignment reads and writes them in one Lua step, so they share the
  ``{handoff}`` hash tag (one Cluster slot).
- ``P:demo:orders``             hash: the demo order backend's orders (id -> JSON)
- ``P:csat:ratings``            stream: every rating given (conversation, rating, time)
- ``P:feedback``                stream: complaints, praise and suggestions, customers' words
- ``P:clarify:confirmed``       stream: readings customers chose (conversation, entry, intent)
- ``P:accounts``                hash: username -> JSON (bcrypt hash, role, created)
- ``P:session:{sha256(token)}`` string: a signed-in session (JSON: user, role, csrf)
- ``P:login:{<address>}:ua:{sha256(user)}`` hash: failed sign-ins of a user from an address
- ``P:login:{<address>}:addr``  hash: sign-in attempts of an address (GCRA); the braces put
  both of an address's counters in one Cluster slot, as the sign-in script needs
- ``P:rl:addr:{address}``       hash: customer messages of an address (GCRA)
- ``P:events``                  pub/sub: events every process must hear (bot/events.py)
- ``P:barrier``                 pub/sub, never listened to: the write before a Redis WAIT
- ``P:secret:action_token``     shared secret for the in-app custom action route
- ``P:secret:webchat``          shared secret that signs web chat session cookies
- ``P:wechat:token``            string: WeChat access_token, expiring before WeChat's does
- ``P:wechat:token:lock``       string: held by the one process refreshing the token
- ``P:wecom:token``             string: WeCom access_token (gettoken), expiring before WeCom's does
- ``P:wecom:token:lock``        string: held by the one process refreshing it
- ``P:wecomkf:cursor:{open_kfid}`` string: kf/sync_msg's next_cursor of one kf account
- ``P:wecomkf:pull:{open_kfid}``   string: held by the one process pulling that account
- ``P:wecomkf:again:{open_kfid}``  string: a callback came (its Token): pull again
- ``P:audit``                   stream: who read, exported or erased which conversation (hashed)
- ``P:audit:names``             hash: conversation hash -> id, while the conversation exists
- ``P:audit:seen:{hash}:{via}:{who}`` string: a read was audited (one entry per ten minutes)
- ``P:erasures``                stream: that a conversation was erased, by whom (no content)
- ``P:{stats}:<day>[:…]``       KPI counters, conversation sets, duration samples per day
- ``P:{stats}:ch:<channel>:<day>``  set: a channel's conversations of a day
- ``P:{stats}:src:<day>:sources``   set: the campaign sources of a day (capped)
- ``P:{stats}:src:<day>:of:<source>`` set: the conversations a source brought that day
- ``P:{rv}:…``                  review indexes (messages by word, intent, channel; labels)
- ``P:retrain:job|log|lock``    the retraining job started from the review page
- ``P:retention:lock``          held by the one process running the retention sweep
- ``P:layout``                  the key layout the data is in (``LAYOUT_VERSION``), set once
  bot/migrations.py has moved the keys of older layouts
- ``P:migration:lock``          held by the one process moving them
- ``P:migrating:<new name>``    an old key's data waiting to be merged into its new name
  (same hash tag, so the merge is one script on one Cluster slot)

**Older layouts** are named only by `LegacyKeys` below, which the migration
reads; nothing else may use them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, unquote

from redis.crc import key_slot

# Characters kept as they are in a conversation's hash tag; everything else
# (``%``, ``{``, ``}``, ``*``, ``?``, ``[``, ``]``, ``\``, spaces, non-ASCII…) is
# percent-encoded, which is reversible and never yields a brace or a glob character.
_SAFE = ":@._-~!$&'()+,;=/"
CONVERSATION_NAMESPACE = "c"
# Hash tags of the features whose keys must share one Redis Cluster slot.
HANDOFF_TAG, STATS_TAG, REVIEW_TAG = "{handoff}", "{stats}", "{rv}"
# The layout the keys above describe: 2 since the hash tags (1 had none).
LAYOUT_VERSION = "2"


def encode_conversation(conversation: str) -> str:
    return quote(conversation, safe=_SAFE)


def glob_escape(text: str) -> str:
    """`text` matched literally in a SCAN pattern (the prefix may hold glob characters)."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def by_slot(keys: Iterable[str]) -> list[list[str]]:
    """`keys` grouped by Redis Cluster hash slot, for multi-key commands such as DEL."""
    groups: dict[int, list[str]] = {}
    for key in keys:
        groups.setdefault(key_slot(key.encode()), []).append(key)
    return list(groups.values())


@dataclass(frozen=True)
class Keys:
    prefix: str

    # -- one conversation ---------------------------------------------------------

    def conv(self, conversation: str, *parts: str) -> str:
        """A key of one conversation: ``P:c:{<encoded id>}:<parts>``."""
        tag = f"{self.prefix}:{CONVERSATION_NAMESPACE}:{{{encode_conversation(conversation)}}}"
        return ":".join((tag, *parts))

    def conversation_of(self, key: str) -> str | None:
        """The conversation a per-conversation key belongs to (None for shared keys)."""
        for head in (
            f"{self.prefix}:{CONVERSATION_NAMESPACE}:{{",
            self.shared(HANDOFF_TAG, "state", "{"),
        ):
            if key.startswith(head) and "}" in key[len(head) :]:
                return unquote(key[len(head) : key.index("}", len(head))])
        return None

    def part_of(self, key: str) -> str:
        """What a conversation's key holds: ``log``, ``handoff:state``, ``msg:<id>``…"""
        conversation = self.conversation_of(key)
        if conversation is not None and key == self.handoff_state(conversation):
            return "handoff:state"
        return key.split("}:", 1)[1]

    def conversation_pattern(self, conversation: str) -> str:
        """SCAN pattern matching every key of one conversation (and no other's)."""
        return self.conv(conversation, "*")

    def tracker(self, conversation: str) -> str:
        return self.conv(conversation, "tracker")

    @property
    def tracker_pattern(self) -> str:
        return f"{self.prefix}:{CONVERSATION_NAMESPACE}:{{*}}:tracker"

    def lock_queue(self, conversation: str) -> str:
        return self.conv(conversation, "lock", "queue")

    def lock_expiry(self, conversation: str) -> str:
        return self.conv(conversation, "lock", "expiry")

    def lock_counter(self, conversation: str) -> str:
        return self.conv(conversation, "lock", "counter")

    def conv_meta(self, conversation: str) -> str:
        return self.conv(conversation, "meta")

    def conv_log(self, conversation: str) -> str:
        return self.conv(conversation, "log")

    def conv_notes(self, conversation: str) -> str:
        return self.conv(conversation, "notes")

    def conv_nlu(self, conversation: str) -> str:
        return self.conv(conversation, "nlu")

    def message_claim(self, conversation: str, message_id: str) -> str:
        return self.conv(conversation, "msg", message_id)

    def handoff(self, conversation: str) -> str:
        return self.conv(conversation, "handoff")

    def handoff_state(self, conversation: str) -> str:
        """On the handoff feature's slot (see the module's docstring), not the conversation's."""
        return self.shared(HANDOFF_TAG, "state", f"{{{encode_conversation(conversation)}}}")

    def handoff_reasons(self, conversation: str) -> str:
        return self.conv(conversation, "handoff", "reasons")

    def alerts(self, conversation: str) -> str:
        return self.conv(conversation, "alerts")

    def csat(self, conversation: str) -> str:
        return self.conv(conversation, "csat")

    def clarify(self, conversation: str) -> str:
        return self.conv(conversation, "clarify")

    def wechat_last_inbound(self, conversation: str) -> str:
        return self.conv(conversation, "wechat", "last_in")

    def wechat_window_closed(self, conversation: str) -> str:
        return self.conv(conversation, "wechat", "closed")

    def wechat_message(self, conversation: str, message_key: str) -> str:
        return self.conv(conversation, "wechat", "msg", message_key)

    def wecomkf_last_inbound(self, conversation: str) -> str:
        return self.conv(conversation, "wecomkf", "last_in")

    def wecomkf_sent(self, conversation: str) -> str:
        return self.conv(conversation, "wecomkf", "sent")

    def wecomkf_message(self, conversation: str, msgid: str) -> str:
        return self.conv(conversation, "wecomkf", "msg", msgid)

    def wecomkf_servicer(self, conversation: str) -> str:
        return self.conv(conversation, "wecomkf", "servicer")

    def weibo_last_inbound(self, conversation: str) -> str:
        return self.conv(conversation, "weibo", "last_in")

    def weibo_window_closed(self, conversation: str) -> str:
        return self.conv(conversation, "weibo", "closed")

    def weibo_message(self, conversation: str, message_key: str) -> str:
        return self.conv(conversation, "weibo", "msg", message_key)

    def off_tag_keys(self, conversation: str) -> list[str]:
        """A conversation's keys outside ``P:c:{id}:``, which a SCAN of its pattern misses."""
        return [self.handoff_state(conversation)]

    def conversation_keys(self, conversation: str) -> list[str]:
        """The fixed keys of one conversation (message-id claims expire by themselves).

        Not all on one Cluster slot (see `off_tag_keys`): delete them with
        `by_slot`, never in one multi-key DEL.
        """
        return [
            self.tracker(conversation),
            self.lock_queue(conversation),
            self.lock_expiry(conversation),
            self.lock_counter(conversation),
            self.conv_meta(conversation),
            self.conv_log(conversation),
            self.conv_notes(conversation),
            self.conv_nlu(conversation),
            self.handoff(conversation),
            self.handoff_state(conversation),
            self.handoff_reasons(conversation),
            self.csat(conversation),
            self.alerts(conversation),
            self.clarify(conversation),
            self.wechat_last_inbound(conversation),
            self.wechat_window_closed(conversation),
            self.wecomkf_last_inbound(conversation),
            self.wecomkf_sent(conversation),
            self.wecomkf_servicer(conversation),
            self.weibo_last_inbound(conversation),
            self.weibo_window_closed(conversation),
        ]

    # -- shared ----------------------------------------------------------------

    def shared(self, *parts: str) -> str:
        assert parts and parts[0] != CONVERSATION_NAMESPACE, "the c: namespace is per conversation"
        return ":".join((self.prefix, *parts))

    @property
    def conversations(self) -> str:
        return self.shared("conversations")

    @property
    def canned(self) -> str:
        return self.shared("canned")

    def handoff_shared(self, *parts: str) -> str:
        """A shared key of the handoff feature: the queue, presence, load and rosters.

        One builder for all of them, under the feature's hash tag: the
        transitions and the assignment step touch them together, in one slot.
        """
        return self.shared(HANDOFF_TAG, *parts)

    @property
    def handoff_waiting(self) -> str:
        return self.handoff_shared("waiting")

    @property
    def handoff_waits(self) -> str:
        return self.handoff_shared("waits")

    @property
    def handoff_assigned(self) -> str:
        return self.handoff_shared("assigned")

    @property
    def handoff_load(self) -> str:
        return self.handoff_shared("load")

    @property
    def handoff_given(self) -> str:
        return self.handoff_shared("given")

    @property
    def presence(self) -> str:
        return self.handoff_shared("presence")

    @property
    def presence_live(self) -> str:
        return self.handoff_shared("live")

    @property
    def alert_queue(self) -> str:
        return self.handoff_shared("alert", "queue")

    def presence_consoles(self, agent: str) -> str:
        return self.handoff_shared("consoles", encode_conversation(agent))

    @property
    def roster_capacity(self) -> str:
        return self.handoff_shared("capacity")

    @property
    def roster_teams(self) -> str:
        return self.handoff_shared("teams")

    @property
    def roster_agents(self) -> str:
        return self.handoff_shared("agents")

    def team_members(self, team: str) -> str:
        """The agents of `team`; '' is everyone on the roster."""
        if not team:
            return self.roster_agents
        return self.handoff_shared("team", encode_conversation(team))

    @property
    def demo_orders(self) -> str:
        return self.shared("demo", "orders")

    @property
    def csat_ratings(self) -> str:
        return self.shared("csat", "ratings")

    @property
    def feedback(self) -> str:
        return self.shared("feedback")

    @property
    def clarify_confirmed(self) -> str:
        return self.shared("clarify", "confirmed")

    @property
    def accounts(self) -> str:
        return self.shared("accounts")

    def session(self, token_digest: str) -> str:
        return self.shared("session", token_digest)

    @property
    def events(self) -> str:
        return self.shared("events")

    @property
    def replication_barrier(self) -> str:
        """A channel published to before WAIT (bot/redis_connection.py), never subscribed."""
        return self.shared("barrier")

    @property
    def action_token(self) -> str:
        return self.shared("secret", "action_token")

    @property
    def webchat_secret(self) -> str:
        return self.shared("secret", "webchat")

    @property
    def wechat_token(self) -> str:
        return self.shared("wechat", "token")

    @property
    def wechat_token_lock(self) -> str:
        return self.shared("wechat", "token", "lock")

    @property
    def wecom_token(self) -> str:
        return self.shared("wecom", "token")

    @property
    def wecom_token_lock(self) -> str:
        return self.shared("wecom", "token", "lock")

    # One kf account's pull state. Its id is WeCom's (letters, digits, _ and -),
    # quoted all the same so no id can reach into another key.
    def wecomkf_cursor(self, open_kfid: str) -> str:
        return self.shared("wecomkf", "cursor", encode_conversation(open_kfid))

    def wecomkf_pull_lock(self, open_kfid: str) -> str:
        return self.shared("wecomkf", "pull", encode_conversation(open_kfid))

    def wecomkf_pull_again(self, open_kfid: str) -> str:
        return self.shared("wecomkf", "again", encode_conversation(open_kfid))

    @property
    def audit(self) -> str:
        return self.shared("audit")

    @property
    def audit_names(self) -> str:
        return self.shared("audit", "names")

    def audit_seen(self, conversation_hash: str, who: str, via: str) -> str:
        return self.shared("audit", "seen", conversation_hash, via, who)

    @property
    def erasures(self) -> str:
        return self.shared("erasures")

    def stats(self, day: str, *parts: str) -> str:
        """A KPI key; all on one slot, so ranges of days can be united server-side."""
        return self.shared(STATS_TAG, day, *parts)

    def stats_group(self, group: str, day: str, *parts: str) -> str:
        """A KPI key of `group` (a channel's, the sources') on `day`; on the KPIs' slot."""
        return self.shared(STATS_TAG, group, day, *parts)

    def review(self, *parts: str) -> str:
        """A review index key; all on one slot, so filters intersect server-side."""
        return self.shared(REVIEW_TAG, *parts)

    @property
    def retrain_job(self) -> str:
        return self.shared("retrain", "job")

    @property
    def retrain_log(self) -> str:
        return self.shared("retrain", "log")

    @property
    def retrain_lock(self) -> str:
        return self.shared("retrain", "lock")

    @property
    def retention_lock(self) -> str:
        return self.shared("retention", "lock")

    @property
    def layout(self) -> str:
        """The done-marker: the `LAYOUT_VERSION` the keys were moved to."""
        return self.shared("layout")

    @property
    def migration_lock(self) -> str:
        return self.shared("migration", "lock")

    def migrating(self, key: str) -> str:
        """Where an old key's data waits to be merged into `key`: beside it, on its slot.

        ``P:migrating:{stats}:…`` hashes on ``{stats}`` like ``P:{stats}:…``, and
        no feature's SCAN (``P:{rv}:*``, ``P:{stats}:*``) finds it.
        """
        head = f"{self.prefix}:"
        assert key.startswith(head + "{"), "only keys with a feature's hash tag are merged"
        return self.shared("migrating", key[len(head) :])

    def migrated(self, staging: str) -> str | None:
        """The key a `migrating()` key is merged into (None for any other key)."""
        head = self.shared("migrating", "")
        return self.shared(staging[len(head) :]) if staging.startswith(head + "{") else None

    @property
    def migrating_pattern(self) -> str:
        return glob_escape(self.shared("migrating", "")) + "{*"

    def fixed_shared_keys(self) -> list[str]:
        """Every shared key whose name takes no argument (for the collision tests)."""
        return [
            self.conversations,
            self.canned,
            self.handoff_waiting,
            self.handoff_waits,
            self.handoff_assigned,
            self.handoff_load,
            self.handoff_given,
            self.presence,
            self.presence_live,
            self.roster_capacity,
            self.roster_teams,
            self.roster_agents,
            self.alert_queue,
            self.demo_orders,
            self.csat_ratings,
            self.feedback,
            self.accounts,
            self.events,
            self.action_token,
            self.webchat_secret,
            self.wechat_token,
            self.wechat_token_lock,
            self.wecom_token,
            self.wecom_token_lock,
            self.retrain_job,
            self.retrain_log,
            self.retrain_lock,
            self.retention_lock,
            self.layout,
            self.migration_lock,
            self.audit,
            self.audit_names,
            self.erasures,
        ]

    # Abuse resistance (bot/security, bot/accounts). Addresses are normalised by
    # bot/security/proxy.py (an IPv6 client counts as its /64); a username is
    # hashed, so no text a stranger types can reach into another key. All of
    # them expire by themselves.
    def rate_conversation(self, conversation: str) -> str:
        """GCRA state of one conversation's message rate (hash: tat, told)."""
        return self.conv(conversation, "rl")

    def rate_address(self, address: str) -> str:
        """GCRA state of one client address's message rate (hash: tat, told)."""
        return self.shared("rl", "addr", address)

    def login_backoff(self, username_digest: str, address: str) -> str:
        """Failed sign-ins of one username from one address (hash: fails, until)."""
        return self.shared("login", f"{{{address}}}", "ua", username_digest)

    def login_address(self, address: str) -> str:
        """GCRA state of one address's sign-in attempts, whatever the username."""
        return self.shared("login", f"{{{address}}}", "addr")


@dataclass(frozen=True)
class LegacyKeys:
    """The names of layout 1, before the hash tags; read only by bot/migrations.py.

    - ``P:c:{id}:handoff:state``   now ``P:{handoff}:state:{id}``
    - ``P:handoff:waiting|assigned|waits``  now ``P:{handoff}:waiting|assigned|waits``
    - ``P:stats:<day>[:…]``        now ``P:{stats}:<day>[:…]``
    - ``P:rv:…``                   now ``P:{rv}:…``
    """

    prefix: str

    @property
    def current(self) -> Keys:
        return Keys(self.prefix)

    def handoff_state(self, conversation: str) -> str:
        return self.current.conv(conversation, "handoff", "state")

    def handoff_queue(self, name: str) -> str:
        """``waiting``, ``assigned`` or ``waits``."""
        return f"{self.prefix}:handoff:{name}"

    def stats(self, day: str, *parts: str) -> str:
        return ":".join((self.prefix, "stats", day, *parts))

    def review(self, *parts: str) -> str:
        return ":".join((self.prefix, "rv", *parts))

    def fixed(self) -> dict[str, str]:
        """The old names that take no argument, and their new names."""
        keys = self.current
        return {
            self.handoff_queue("waiting"): keys.handoff_waiting,
            self.handoff_queue("assigned"): keys.handoff_assigned,
            self.handoff_queue("waits"): keys.handoff_waits,
        }

    def patterns(self) -> list[str]:
        """SCAN patterns for the old names that take arguments (check hits with `renamed`)."""
        prefix = glob_escape(self.prefix)
        return [f"{prefix}:stats:*", f"{prefix}:rv:*", f"{prefix}:c:{{*}}:handoff:state"]

    def renamed(self, key: str) -> str | None:
        """The new name of an old-layout key; None for a key that is not one.

        A pattern match is not enough: ``P:c:{id}:msg:x:handoff:state`` (a client's
        message id) matches ``P:c:{*}:handoff:state`` but is no handoff state.
        """
        keys = self.current
        fixed = self.fixed()
        if key in fixed:
            return fixed[key]
        for head, tag in ((f"{self.prefix}:stats:", STATS_TAG), (f"{self.prefix}:rv:", REVIEW_TAG)):
            if key.startswith(head) and len(key) > len(head):
                return keys.shared(tag, key[len(head) :])
        head = f"{self.prefix}:{CONVERSATION_NAMESPACE}:{{"
        end = key.find("}", len(head))
        if key.startswith(head) and end > len(head):
            conversation = unquote(key[len(head) : end])
            if self.handoff_state(conversation) == key:
                return keys.handoff_state(conversation)
        return None
