"""What a caller may ask of the call service, already validated (by ``api/schemas.py``)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClickToCallRequest:
    """A validated click-to-call request; optional caller-ID fields are None when absent."""
    ext: str
    phone: str                           # digits only, formatting removed
    src_cid_name: str = "Click2Call"
    src_cid_number: str | None = None    # default: the ext
    dest_cid_name: str | None = None     # default: the hotline number
    dest_cid_number: str | None = None   # default: the hotline number
    auto_answer: bool = False
    hotline: str | None = None           # default: the tenant's first hotline
    customer_id: str | None = None       # the CRM's customer: carried to the record and the dialplan
    record: bool | None = None           # record this call; None: the tenant's recording.enabled


@dataclass(frozen=True)
class CdrQuery:
    """Filters and page of ``GET /v1/cdr``. Dates are already UTC ISO-8601 text (as the store
    holds ``time_started``): ``start_date`` inclusive, ``end_date`` exclusive (``api/schemas.py``
    turns the carrier's end-inclusive dates into that). ``offset``, when given, replaces
    ``page``. ``direction`` "inbound" matches nothing: every click-to-call is outbound."""
    start_date: str | None = None
    end_date: str | None = None
    extension: str | None = None
    phone: str | None = None             # either party's number
    status: str | None = None
    customer_id: str | None = None
    direction: str | None = None         # outbound, inbound
    limit: int = 50
    page: int = 1
    offset: int | None = None

    def filters(self) -> dict[str, str | None]:
        """What selects the rows (not which of them): carried by a scroll id."""
        return {"start_date": self.start_date, "end_date": self.end_date, "extension": self.extension,
                "phone": self.phone, "status": self.status, "customer_id": self.customer_id,
                "direction": self.direction}
