"""Prometheus metrics, one registry per app (so tests can run several apps at once)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .calls.phones import AutoAnswerTally
from .calls.registry import CallRegistry
from .pbx import AmiClient, AmiState

if TYPE_CHECKING:
    from .notify.stream import EventHub
    from .notify.webhooks import WebhookNotifier

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("c2c_requests_total", "Click-to-call requests by endpoint and outcome",
                                ["endpoint", "outcome"], registry=self.registry)
        self.latency = Histogram("c2c_request_seconds", "Click-to-call request latency",
                                 ["endpoint"], registry=self.registry,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
        self.refusals = Counter("c2c_click_refusals_total", "Click-to-calls refused by a guard rail before "
                                "any INVITE, per tenant and code (PHONE_BLACKLISTED, CALLER_ID_NOT_ALLOWED)",
                                ["tenant", "code"], registry=self.registry)
        self.calls_in_flight = Gauge("c2c_calls_in_flight", "Calls the gateway is tracking, per PBX", ["pbx"],
                                     registry=self.registry)
        self.ami_up = Gauge("c2c_ami_up", "1 when the PBX's AMI link is logged in and usable", ["pbx"],
                            registry=self.registry)
        self.ami_state = Gauge("c2c_ami_state", "AMI link state (1 for the current one)", ["pbx", "state"],
                               registry=self.registry)
        self._counters: dict[tuple[str, str], Any] = {}
        self._histograms: dict[str, Any] = {}
        self._amis: dict[str, AmiClient] = {}
        self.registry.register(_AmiEventsCollector(self._amis))
        self.ami_reconnects = Gauge("c2c_ami_reconnect_attempts", "AMI reconnect attempts since start", ["pbx"],
                                    registry=self.registry)

    def request_done(self, endpoint: str, outcome: str, seconds: float) -> None:
        """One click-to-call request (the labelled series are looked up once each)."""
        counter = self._counters.get((endpoint, outcome))
        if counter is None:
            counter = self._counters[endpoint, outcome] = self.requests.labels(endpoint, outcome)
        histogram = self._histograms.get(endpoint)
        if histogram is None:
            histogram = self._histograms[endpoint] = self.latency.labels(endpoint)
        counter.inc()
        histogram.observe(seconds)

    def watch(self, pbx: str, ami: AmiClient, calls: CallRegistry) -> None:
        """Read one PBX's live values at scrape time rather than mirroring every change."""
        self.calls_in_flight.labels(pbx).set_function(lambda: len(calls.live(pbx=pbx)))
        self.ami_up.labels(pbx).set_function(lambda: 1.0 if ami.ready else 0.0)
        self.ami_reconnects.labels(pbx).set_function(lambda: float(ami.reconnects))
        self._amis[pbx] = ami

        def is_current(state: AmiState) -> Callable[[], float]:
            return lambda: 1.0 if ami.state is state else 0.0
        for state in AmiState:
            self.ami_state.labels(pbx, state.value).set_function(is_current(state))

    def watch_auto_answer(self, tally: AutoAnswerTally) -> None:
        """Auto-answer asked, per phone User-Agent: answered by itself, or rang instead."""
        self.registry.register(_AutoAnswerCollector(tally))

    def watch_webhooks(self, notifier: WebhookNotifier) -> None:
        """Webhook deliveries per tenant: outcomes of this instance's attempts, and the
        outbox's pending rows (all instances, as of the notifier's last housekeeping)."""
        self.registry.register(_WebhookCollector(notifier))

    def watch_streams(self, hub: EventHub) -> None:
        """The event stream on this instance: open streams, events read, frames sent, streams dropped."""
        self.registry.register(_StreamCollector(hub))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _WebhookCollector:
    """Reads the notifier's counts at scrape time."""

    def __init__(self, notifier: WebhookNotifier) -> None:
        self.notifier = notifier

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        outcomes = CounterMetricFamily(
            "c2c_webhook_deliveries", "Webhook delivery attempts by tenant and outcome "
            "(delivered, retried: failed and due again, dead: given up)", labels=["tenant", "outcome"])
        for (tenant, outcome), count in sorted(self.notifier.outcomes.items()):
            outcomes.add_metric([tenant, outcome], count)
        yield outcomes
        pending = GaugeMetricFamily("c2c_webhook_pending", "Undelivered webhook deliveries in the outbox, "
                                    "per tenant", labels=["tenant"])
        for tenant, count in sorted(self.notifier.pending_by_tenant.items()):
            pending.add_metric([tenant], count)
        yield pending


class _AutoAnswerCollector:
    """Reads the registry's auto-answer tally at scrape time."""

    def __init__(self, tally: AutoAnswerTally) -> None:
        self.tally = tally

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        family = CounterMetricFamily(
            "c2c_auto_answer", "Calls that asked the agent's phone to answer by itself, per phone User-Agent: "
            "honoured=true it did (within a second), false it rang instead", labels=["user_agent", "honoured"])
        for (user_agent, honoured), count in sorted(self.tally.counts.items()):
            family.add_metric([user_agent, "true" if honoured else "false"], count)
        yield family


class _StreamCollector:
    def __init__(self, hub: EventHub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Any]:
        hub = self.hub
        yield GaugeMetricFamily("c2c_event_streams", "Open event streams (GET /v1/events/stream) on this instance",
                                value=hub.streams)
        yield CounterMetricFamily("c2c_event_log_read", "Events this instance read from the event log",
                                  value=hub.frames_read)
        yield CounterMetricFamily("c2c_event_frames_sent", "Events this instance wrote to its streams",
                                  value=hub.frames_sent)
        yield CounterMetricFamily("c2c_event_streams_dropped", "Streams dropped for falling behind (they resume "
                                  "with Last-Event-ID)", value=hub.dropped)


class _AmiEventsCollector:
    """Events each PBX's Asterisk sent, read at scrape time (a counter the link keeps)."""

    def __init__(self, amis: dict[str, AmiClient]) -> None:
        self.amis = amis

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        events = CounterMetricFamily("c2c_ami_events_received", "AMI events the PBX sent, kept or not "
                                     "(what its event mask and filters let through)", labels=["pbx"])
        for pbx, ami in sorted(self.amis.items()):
            events.add_metric([pbx], ami.events_received)
        yield events
