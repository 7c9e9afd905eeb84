"""/metrics: Prometheus text from a registry per app (no process-global state between apps or tests).

Ingress counters and latencies are counted as requests arrive; what the database holds (deliveries
by outcome, queue depth, loops by state, cost) is read from the store at scrape time, so every
replica reports the same shared state.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from loopbot.app.web import StoreView

PRIORITIES = ("security", "incident", "routine", "reconcile")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class AppMetrics:
    def __init__(self, store: StoreView):
        self.registry = CollectorRegistry(auto_describe=True)
        self.webhooks = Counter("loopbot_webhook_requests", "Webhook requests by event and ingress outcome "
                                "(accepted, duplicate, ping, bad_signature, malformed, oversize, unavailable)",
                                ["event", "outcome"], registry=self.registry)
        self.ack_seconds = Histogram("loopbot_webhook_ack_seconds", "Time from request to acknowledgement",
                                     buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
                                     registry=self.registry)
        # Observed by whoever dispatches in this process (the workers): delivery -> workflow_dispatch.
        self.dispatch_seconds = Histogram("loopbot_dispatch_latency_seconds",
                                          "Time from a delivery to its workflow dispatch",
                                          buckets=(0.5, 1, 5, 15, 60, 300, 900, 3600, 14400),
                                          registry=self.registry)
        self.registry.register(StoreCollector(store))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class StoreCollector(Collector):
    def __init__(self, store: StoreView):
        self.store = store

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("loopbot_store_up", "1 when the store answered this scrape")
        try:
            counts = self.store.delivery_counts()
            depth = self.store.queue_depth()
            loops = self.store.loops()
            dead = len(self.store.dead_letters())
        except Exception:  # a scrape never fails for a database that is away: it says so
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        deliveries = CounterMetricFamily("loopbot_deliveries", "Stored deliveries by event and outcome",
                                         labels=["event", "outcome"])
        for (event, outcome), n in sorted(counts.items()):
            deliveries.add_metric([event, outcome], n)
        yield deliveries
        queue = GaugeMetricFamily("loopbot_queue_depth", "Pending jobs by priority", labels=["priority"])
        for priority in sorted({*PRIORITIES, *depth}):
            queue.add_metric([priority], depth.get(priority, 0))
        yield queue
        by_state = GaugeMetricFamily("loopbot_loops", "Loops by state", labels=["state"])
        for state, n in sorted(Tally(loop.status for loop in loops).items()):
            by_state.add_metric([state], n)
        yield by_state
        cost = CounterMetricFamily("loopbot_cost_usd", "Model spend of the registered loops, by repository",
                                   labels=["repo"])
        spent: dict[str, float] = {}
        for loop in loops:
            spent[loop.repo] = spent.get(loop.repo, 0.0) + (loop.cost_usd or 0.0)
        for repo, usd in sorted(spent.items()):
            cost.add_metric([repo], usd)
        yield cost
        dead_letters = GaugeMetricFamily("loopbot_dead_letters", "Jobs that ran out of retries")
        dead_letters.add_metric([], dead)
        yield dead_letters
