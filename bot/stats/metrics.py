"""Prometheus metrics of one bot process (`GET /metrics`).

Each app has its own registry (tests start many apps in one process).
Counters and histograms are updated as messages flow; the queue length,
the agents online and the model version are read when Prometheus scrapes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
        self.queue_length = Gauge(
            "kefu_queue_length", "Conversations waiting for a person", registry=self.registry
        )
        self.agents_online = Gauge(
            "kefu_agents_online",
            "Agents with the console open on this process",
            registry=self.registry,
        )
        self.model = Gauge(
            "kefu_model_info",
            "The model this process serves (value 1)",
            ["version"],
            registry=self.registry,
        )

    def serving(self, version: str) -> None:
        self.model.clear()
        self.model.labels(version).set(1)
