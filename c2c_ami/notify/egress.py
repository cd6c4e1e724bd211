"""Egress policy for webhook URLs: where the gateway may POST on a tenant's behalf.

A webhook URL is chosen by a tenant, so without a policy the gateway would connect wherever it
is told: its own API, the AMI port, a cloud metadata service, any host of the private network.
The policy is applied twice: when a hook is registered (the URL's form, and a literal address)
and at each delivery after DNS resolution (``GuardedResolver``), so a name that later resolves
to a refused address (DNS rebinding) is refused too, and the connection goes only to an
address that was checked.

Refused by default: loopback, private (RFC 1918, 100.64.0.0/10), link-local, unique-local,
multicast, unspecified, reserved and broadcast addresses and any other non-global range, the
same addresses in IPv6 disguise (IPv4-mapped, IPv4-compatible, 6to4, NAT64, Teredo), hosts that
are neither a normal DNS name nor a canonical dotted quad or bracketed IPv6 (``0x7f000001``,
``2130706433``, ``017700000001``, ``127.1``), ``localhost``, and URLs with user:password@.
``allow`` networks lift the default refusals (receivers on a private network); ``deny``
networks are always refused.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

if TYPE_CHECKING:                       # a TypedDict of aiohttp's typing only
    from aiohttp.abc import ResolveResult

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_TOP_LABEL = re.compile(r"[a-z][a-z0-9-]*[a-z0-9]|xn--[a-z0-9-]+")   # never numeric, never 0x...
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"     # no leading zeros: canonical only
_DOTTED_QUAD = re.compile(rf"{_OCTET}(\.{_OCTET}){{3}}")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_LOCAL_NAMES = ("localhost", "localhost.localdomain")


class EgressRefused(OSError):
    """The policy refuses this destination; no connection was made."""


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, compatible, 6to4, NAT64, Teredo)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if int(ip) >> 32 == 0 and int(ip) > 1:          # ::a.b.c.d (IPv4-compatible, deprecated)
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _why_not_global(ip: Address) -> str | None:
    """Why the default rules refuse ``ip`` (None: a public unicast address)."""
    for attr, why in (("is_unspecified", "unspecified"), ("is_loopback", "loopback"),
                      ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                      ("is_reserved", "reserved"), ("is_private", "private")):
        if getattr(ip, attr):
            return why
    if ip in _CGNAT:
        return "private"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local"
    if not ip.is_global:
        return "not a global address"
    return None


class EgressPolicy:
    """Which destinations webhooks may reach; see the module docstring."""

    def __init__(self, allow: Iterable[str | Network] = (), deny: Iterable[str | Network] = ()) -> None:
        self.allow = tuple(ipaddress.ip_network(n) if isinstance(n, str) else n for n in allow)
        self.deny = tuple(ipaddress.ip_network(n) if isinstance(n, str) else n for n in deny)

    def address_refusal(self, ip: Address | str) -> str | None:
        """Why ``ip`` is refused, or None if the gateway may connect to it."""
        ip = ipaddress.ip_address(ip)
        forms: list[Address] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and (v4 := _embedded_v4(ip)) is not None:
            forms.append(v4)
        for form in forms:
            if any(form in net for net in self.deny):
                return f"{ip} is in webhooks.deny_networks"
        if any(form in net for form in forms for net in self.allow):
            return None
        for form in reversed(forms):          # the IPv4 an IPv6 address stands for first
            why = _why_not_global(form)
            if why is not None:
                return f"{ip} is {why}" if form is ip else f"{ip} is {form}, {why}"
        return None

    def url_refusal(self, url: str) -> str | None:
        """Why ``url`` is refused before any DNS lookup (its form, a literal address,
        ``localhost``), or None. Names are checked again after resolution."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return "not a valid URL"
        if parts.scheme not in ("http", "https"):
            return "must be an absolute http:// or https:// URL"
        netloc = parts.netloc
        if "@" in netloc:
            return "must not contain a user name or password"
        if port == 0:
            return "port 0 is not a port"
        host = netloc.rsplit(":", 1)[0] if not netloc.endswith("]") and ":" in netloc else netloc
        host = host.lower()
        if host.startswith("["):
            if not host.endswith("]"):
                return "not a valid bracketed IPv6 address"
            try:
                ip: Address = ipaddress.IPv6Address(host[1:-1])
            except ValueError:
                return "not a valid bracketed IPv6 address"
            return self.address_refusal(ip)
        if _DOTTED_QUAD.fullmatch(host):
            return self.address_refusal(ipaddress.IPv4Address(host))
        name = host[:-1] if host.endswith(".") else host
        labels = name.split(".")
        if not name or len(name) > 253 or not all(_LABEL.fullmatch(lb) for lb in labels) \
                or not _TOP_LABEL.fullmatch(labels[-1]):
            return "host must be a DNS name, a dotted-quad IPv4 address or a bracketed IPv6 address"
        if name in _LOCAL_NAMES or name.endswith(".localhost"):
            return self.address_refusal("127.0.0.1")
        return None

    def resolved_refusal(self, host: str, addresses: list[str]) -> str | None:
        """After resolving ``host``: why none of ``addresses`` may be used."""
        reasons = [r for r in (self.address_refusal(a) for a in addresses) if r]
        if len(reasons) < len(addresses):
            return None
        return f"{host} resolves only to refused addresses ({'; '.join(reasons) or 'none'})"


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that resolves with ``inner`` and keeps only the addresses the policy
    allows, so the connection is made to a checked address (no second lookup to rebind)."""

    def __init__(self, policy: EgressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        allowed = [r for r in results if self.policy.address_refusal(r["host"]) is None]
        if not allowed:
            raise EgressRefused(self.policy.resolved_refusal(host, [r["host"] for r in results])
                                or f"{host}: no address")
        return allowed

    async def close(self) -> None:
        await self.inner.close()


def refusal_in(exc: BaseException) -> str | None:
    """The egress refusal behind a client error (aiohttp wraps the resolver's), if any."""
    seen: set[int] = set()
    current: Any = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, EgressRefused):
            return str(current)
        current = getattr(current, "os_error", None) or current.__cause__ or current.__context__
    return None
