"""Prometheus metrics of one bot process, or of all its workers (`GET /metrics`).

Each app has its own registry (tests start many apps in one process).
Counters and histograms are updated as messages flow; the queue length is
read when Prometheus scrapes, the agents online as consoles come and go.

With `BOT_WORKERS` > 1 the workers share one port, so each scrape reaches
one of them at random: per-worker counters would jump up and down from one
scrape to the next. The supervisor then runs them in prometheus-client's
multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`): every worker writes its
values to its own file in that folder and any worker answers a scrape with
the sum over all of them, including workers that have exited, so counters
only grow. Separate replicas (hosts, containers) are separate scrape targets.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# People's times: seconds to a first reply, minutes to hours of handling.
HUMAN_BUCKETS = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
# Agents a process labels its series with (accounts: a team, not thousands); later "other".
MAX_AGENT_LABELS = 200
# Campaign sources a process labels its series with; later ones count as "other".
MAX_SOURCE_LABELS = 20


class Metrics:
    def __init__(self, multiprocess_dir: Path | None = None, per_agent: bool = False) -> None:
        self.registry = CollectorRegistry()
        self._multiprocess_dir = multiprocess_dir
        self._version: str | None = None
        self._loop_stall_max = 0.0
        self.messages = Counter(
            "kefu_messages",
            "Messages by channel and direction (in: from customers, out: to them)",
            ["channel", "direction"],
            registry=self.registry,
        )
        self.nlu_seconds = Histogram(
            "kefu_nlu_seconds",
            "Time to classify one customer message",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.turn_seconds = Histogram(
            "kefu_turn_seconds",
            "Time from a customer message arriving to the bot's reply being logged",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.escalations = Counter(
            "kefu_escalations",
            "Conversations handed to a person, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.first_responses = Counter(
            "kefu_first_responses",
            "Agents' first replies since a conversation was queued, by team and within target",
            ["team", "within_target"],
            registry=self.registry,
        )
        self.conversations = Counter(
            "kefu_conversations",
            "Conversations with a customer message, each counted once a day, by channel",
            ["channel"],
            registry=self.registry,
        )
        self.channel_escalations = Counter(
            "kefu_channel_escalations",
            "Requests for a person, by channel",
            ["channel"],
            registry=self.registry,
        )
        self.handoffs = Counter(
            "kefu_handoffs",
            "Conversations a person took (to: console, or the platform's own servicers)",
            ["channel", "to"],
            registry=self.registry,
        )
        self.campaign_arrivals = Counter(
            "kefu_campaign_arrivals",
            "Customers arriving from a campaign (a QR code's scene), by source",
            ["source"],
            registry=self.registry,
        )
        self._sources: set[str] = set()
        # Per-agent series only where /metrics needs a token (see AgentMetrics).
        self.agents = AgentMetrics(self.registry) if per_agent else None
        # Multiprocess modes (ignored in a single process): the queue length as
        # last read by any worker; agents summed over the workers alive; a
        # version is 1 while any worker alive serves it.
        self.queue_length = Gauge(
            "kefu_queue_length",
            "Conversations waiting for a person",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.agents_online = Gauge(
            "kefu_agents_online",
            "Agents with the console open on this process (summed over its workers)",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.model = Gauge(
            "kefu_model_info",
            "The model this process serves (value 1)",
            ["version"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.loop_stall = Histogram(
            "kefu_loop_stall_seconds",
            "How late the event loop ran a ready task (bot/loop_lag.py), per 10 ms tick",
            buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 5.0),
            registry=self.registry,
        )
        self.loop_stall_max = Gauge(
            "kefu_loop_stall_max_seconds",
            "The longest event-loop stall since this process started",
            registry=self.registry,
            multiprocess_mode="max",
        )

    def loop_stalled(self, seconds: float) -> None:
        self.loop_stall.observe(seconds)
        if seconds > self._loop_stall_max:
            self._loop_stall_max = seconds
            self.loop_stall_max.set(seconds)

    def source(self, label: str) -> str:
        """`label` as a series label: the first MAX_SOURCE_LABELS this process saw, or other."""
        if label in self._sources or len(self._sources) < MAX_SOURCE_LABELS:
            self._sources.add(label)
            return label
        return "other"

    def serving(self, version: str) -> None:
        if self._version is not None and self._version != version:
            # Set to 0 rather than removed: a worker's file keeps every label it wrote.
            self.model.labels(self._version).set(0)
        self._version = version
        self.model.labels(version).set(1)

    def exposition(self) -> bytes:
        """The text Prometheus scrapes: this process's metrics, or every worker's."""
        if self._multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self._multiprocess_dir))
        return generate_latest(registry)


class AgentMetrics:
    """Series labelled with agents' names: what each handled, how fast, how rated, holds.

    Registered only when `/metrics` asks for a token (BOT_METRICS_TOKEN): it is
    open by default, and one agent's figures are not for anyone who can reach it.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.handled = Counter(
            "kefu_agent_handled",
            "Conversations an agent ended (released or closed), by agent",
            ["agent"],
            registry=registry,
        )
        self.handling_seconds = Histogram(
            "kefu_agent_handling_seconds",
            "Time an agent held a conversation (taken or transferred to them, to released,"
            " closed or transferred on)",
            ["agent"],
            buckets=HUMAN_BUCKETS,
            registry=registry,
        )
        self.first_response_seconds = Histogram(
            "kefu_agent_first_response_seconds",
            "Time from a conversation joining the queue to its agent's first reply",
            ["agent"],
            buckets=HUMAN_BUCKETS,
            registry=registry,
        )
        self.first_responses = Counter(
            "kefu_agent_first_responses",
            "Agents' first replies since a conversation was queued, by agent and within target",
            ["agent", "within_target"],
            registry=registry,
        )
        self.ratings = Counter(
            "kefu_agent_ratings",
            "Satisfaction ratings (1-5) credited to the agent who had just handled the"
            " conversation, by agent and rating",
            ["agent", "rating"],
            registry=registry,
        )
        # Read from Redis at each scrape (like the queue length): the truth across processes.
        self.load = Gauge(
            "kefu_agent_load",
            "Conversations an agent holds now",
            ["agent"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.capacity = Gauge(
            "kefu_agent_capacity",
            "How many conversations an agent may hold at once",
            ["agent"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self._labels: set[str] = set()
        # Labels set before: set again every scrape (0 when absent now).
        self._loaded: set[str] = set()
        self._capped: set[str] = set()

    def label(self, name: str) -> str:
        """`name` as a series label: the first MAX_AGENT_LABELS this process saw, or other."""
        if name in self._labels or len(self._labels) < MAX_AGENT_LABELS:
            self._labels.add(name)
            return name
        return "other"

    def now(self, loads: dict[str, int], capacities: dict[str, int]) -> None:
        """Every agent's load and capacity as read at this scrape.

        Summed per label (agents past MAX_AGENT_LABELS share "other"), and every
        label written before set again, to 0 when nobody under it holds
        anything now: a gauge keeps its last value until set.
        """
        load: dict[str, int] = dict.fromkeys(self._loaded, 0)
        capacity: dict[str, int] = dict.fromkeys(self._capped, 0)
        for agent, n in loads.items():
            label = self.label(agent)
            load[label] = load.get(label, 0) + n
        for agent, n in capacities.items():
            label = self.label(agent)
            capacity[label] = capacity.get(label, 0) + n
        for label, n in load.items():
            self.load.labels(label).set(n)
        for label, n in capacity.items():
            self.capacity.labels(label).set(n)
        self._loaded.update(load)
        self._capped.update(capacity)
