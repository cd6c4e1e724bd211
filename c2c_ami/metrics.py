"""Prometheus metrics, one registry per app (so tests can run several apps at once)."""
from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .calls.registry import CallRegistry
from .pbx import AmiClient, AmiState

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("c2c_requests_total", "Click-to-call requests by endpoint and outcome",
                                ["endpoint", "outcome"], registry=self.registry)
        self.latency = Histogram("c2c_request_seconds", "Click-to-call request latency",
                                 ["endpoint"], registry=self.registry,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
        self.calls_in_flight = Gauge("c2c_calls_in_flight", "Calls the gateway is tracking, per PBX", ["pbx"],
                                     registry=self.registry)
        self.ami_up = Gauge("c2c_ami_up", "1 when the PBX's AMI link is logged in and usable", ["pbx"],
                            registry=self.registry)
        self.ami_state = Gauge("c2c_ami_state", "AMI link state (1 for the current one)", ["pbx", "state"],
                               registry=self.registry)
        self.ami_reconnects = Gauge("c2c_ami_reconnect_attempts", "AMI reconnect attempts since start", ["pbx"],
                                    registry=self.registry)

    def watch(self, pbx: str, ami: AmiClient, calls: CallRegistry) -> None:
        """Read one PBX's live values at scrape time rather than mirroring every change."""
        self.calls_in_flight.labels(pbx).set_function(lambda: len(calls.live(pbx=pbx)))
        self.ami_up.labels(pbx).set_function(lambda: 1.0 if ami.ready else 0.0)
        self.ami_reconnects.labels(pbx).set_function(lambda: float(ami.reconnects))

        def is_current(state: AmiState) -> Callable[[], float]:
            return lambda: 1.0 if ami.state is state else 0.0
        for state in AmiState:
            self.ami_state.labels(pbx, state.value).set_function(is_current(state))

    def render(self) -> bytes:
        return generate_latest(self.registry)
