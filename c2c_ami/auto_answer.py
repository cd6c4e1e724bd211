"""Auto-answer header bundles: which SIP headers ask the agent's phone to answer by itself.

Phones differ in the header they obey, so a bundle is a named, ORDERED list of (header, value)
pairs; the same header may appear twice (two ``Alert-Info`` lines), so nothing keys on the
name. ``standard`` is what wazo-calld sends and covers the common vendors (docs/asterisk.md,
"Auto-answer"). The config may add bundles or override these;
each tenant's bundle is resolved once, at start (``config.Tenant.auto_answer_headers``).

``by_user_agent`` is not a bundle but a choice made per call: the bundle of the first row of
the user-agent table (``calls.auto_answer_user_agents``, then ``USER_AGENT_BUNDLES``) whose
pattern is found in the User-Agent the agent's phone registered with, else ``standard``.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

Bundle = tuple[tuple[str, str], ...]

CALL_INFO: tuple[str, str] = ("Call-Info", "<sip:127.0.0.1>;answer-after=0")
ALERT_INFO: tuple[str, str] = ("Alert-Info", "<http://127.0.0.1>;info=alert-autoanswer;delay=0")
ANSWER_MODE: tuple[str, str] = ("Answer-Mode", "Auto")   # RFC 5373

DEFAULT_BUNDLE = "standard"
CUSTOM_BUNDLE = "custom"          # what the deprecated calls.auto_answer_headers defines
MAX_HEADERS = 16                  # per bundle: the Originate stays small, SIPADDHEADERnn two digits

BUILT_IN: dict[str, Bundle] = {
    "standard": (CALL_INFO, ALERT_INFO, ANSWER_MODE, ("P-Auto-answer", "normal"), ("Answer-After", "0")),
    "call-info": (CALL_INFO,),
    "alert-info": (ALERT_INFO,),
    "answer-mode": (ANSWER_MODE,),
    # Polycom's default auto-answer ring class; must match the phone's alert-info class config
    "polycom": (("Alert-Info", "Ring Answer"),),
    # what the gateway sent before bundles existed
    "legacy": (CALL_INFO, ALERT_INFO),
    "none": (),
}


BY_USER_AGENT = "by_user_agent"   # tenants[].auto_answer / calls.auto_answer: choose per phone
FALLBACK_BUNDLE = DEFAULT_BUNDLE  # a phone whose User-Agent no row names (or that is unknown)

# User-Agent (a case-insensitive regular expression, searched) -> the bundle its phones obey,
# from the vendors' documentation (docs/asterisk.md, "Auto-answer: which phones honour what").
# calls.auto_answer_user_agents rows are tried first, so any row here can be overridden.
USER_AGENT_BUNDLES: tuple[tuple[str, str], ...] = (
    ("yealink", "call-info"),
    ("grandstream", "call-info"),
    (r"polycom|\bpoly(edge)?\b", "polycom"),
    ("snom", "alert-info"),
    ("cisco|linksys", "call-info"),
    ("fanvil", "call-info"),
    ("gigaset", "call-info"),
    ("microsip", "call-info"),
    ("zoiper", "call-info"),
    ("baresip", "call-info"),
    ("aastra|mitel", "alert-info"),
    ("openstage|unify", "alert-info"),
    ("linphone", "standard"),
)


@dataclass(frozen=True)
class UserAgentTable:
    """The rows, in order: (pattern, compiled, bundle name)."""
    rows: tuple[tuple[str, re.Pattern[str], str], ...]

    @classmethod
    def of(cls, rows: Sequence[tuple[str, str]]) -> UserAgentTable:
        return cls(tuple((pattern, re.compile(pattern, re.IGNORECASE), bundle) for pattern, bundle in rows))

    def bundle_for(self, user_agent: str | None) -> str:
        """The bundle name for a phone's User-Agent (``standard`` when none matches)."""
        if user_agent:
            for _, compiled, bundle in self.rows:
                if compiled.search(user_agent):
                    return bundle
        return FALLBACK_BUNDLE


def is_chan_sip(device: str) -> bool:
    """chan_sip (``SIP/``, Asterisk ≤ 20) adds headers by other variables than PJSIP."""
    return device[:4].upper() == "SIP/"


@lru_cache(maxsize=256)
def header_variables(chan_sip: bool, headers: Bundle) -> tuple[tuple[str, str], ...]:
    """The channel variables that add ``headers`` to the INVITE, in order, one per header:
    ``PJSIP_HEADER(add,Name)=value`` (each call adds one header, so a repeated name gives two
    lines) or ``SIPADDHEADERnn=Name: value``. Cached: a tenant's bundle is one tuple object."""
    if chan_sip:
        return tuple((f"SIPADDHEADER{n:02d}", f"{name}: {value}") for n, (name, value) in enumerate(headers, 1))
    return tuple((f"PJSIP_HEADER(add,{name})", value) for name, value in headers)
