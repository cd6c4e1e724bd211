"""What goes out about a call: a log line per step, lifecycle webhooks and the CDR row.

It is the calls' observer, so it runs inside the AMI event path: it only writes to storage
(local SQLite, a fraction of a millisecond) and queues webhook deliveries; the network work
happens in the webhook worker.
"""
from __future__ import annotations

import logging

from ..calls.call import Call, Step
from ..calls.record import call_record, webhook_body
from ..store import Storage
from .webhooks import WebhookNotifier

log = logging.getLogger(__name__)

# Steps announced as webhooks: ringing/answered fire for the extension and again for the
# number (the payload's ``state`` tells which); an ended call sends hangup, then cdr.
_WEBHOOK_EVENTS = ("ringing", "answered")


class CallReporter:
    def __init__(self, storage: Storage, webhooks: WebhookNotifier) -> None:
        self.storage = storage
        self.webhooks = webhooks

    def call_event(self, call: Call, event: Step) -> None:
        record = call_record(call)  # built once: CDR row, webhook body and log line share it
        log.info("call %s: %s (ext %s -> %s)%s", call.call_id, call.state.value, call.ext, call.phone,
                 f" status={record['status']} cause={record['cause']}" if event == "ended" else "")
        try:
            if event in _WEBHOOK_EVENTS:
                self.webhooks.publish(call.tenant, event, webhook_body(record))
            elif event == "ended":
                self.storage.save_call(record)
                body = webhook_body(record)
                self.webhooks.publish(call.tenant, "hangup", body)
                self.webhooks.publish(call.tenant, "cdr", body)
        except Exception:  # reporting must never break call handling
            log.exception("call %s: could not report %s", call.call_id, event)
