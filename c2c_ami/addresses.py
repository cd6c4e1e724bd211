"""A client's address as the limits count it: an IPv4 address as it is (an IPv4-mapped IPv6
address is that IPv4 address), an IPv6 client by its /64, since one host commonly has a
whole /64 to choose from. The failed-authentication limit (``api/common.py``) and the
connections per address (``http_server.py``) both count by it."""
from __future__ import annotations

import ipaddress
from functools import lru_cache


@lru_cache(maxsize=4096)
def client_key(remote: str | None) -> str:
    """``remote`` (a peer's address, as aiohttp and asyncio give it) as a limit's key."""
    if not remote:
        return "unknown"
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])   # fe80::1%eth0: no zone
    except ValueError:
        return remote
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
