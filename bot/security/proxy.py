"""The client's address and scheme, believing forwarding headers only from trusted proxies.

Behind a reverse proxy every request comes from the proxy's address, so rate
limits and sign-in throttles would lump every customer together, and cookies
would not know the customer used HTTPS. A proxy says who its client was in
``X-Forwarded-For`` and how they connected in ``X-Forwarded-Proto``; but anyone
can send those headers, so they are read only when the direct peer is one of
`BOT_TRUSTED_PROXIES`. ``X-Forwarded-For`` is read right to left, skipping
trusted proxies; the first address that is not one is the client (what a
client puts at the left end is never believed).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# An IPv6 customer is given a whole /64; limits count the network, or a
# stranger would have 2**64 addresses to rotate through.
IPV6_BUCKET = 64


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def bucket(address: str) -> str:
    """The address as limits count it: IPv4 as is, IPv6 as its /64 network."""
    parsed = _address(address)
    if parsed is None:
        return "unknown"
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{parsed}/{IPV6_BUCKET}", strict=False))
    return str(parsed)


class TrustedProxies:
    def __init__(self, networks: Iterable[str]) -> None:
        self._networks: list[Network] = [ipaddress.ip_network(n, strict=False) for n in networks]

    def trusted(self, address: Address | None) -> bool:
        return address is not None and any(address in n for n in self._networks)

    def client(self, peer: str | None, forwarded_for: list[str]) -> str | None:
        """The client's address: `peer`, or from X-Forwarded-For when peer is a trusted proxy."""
        current = _address(peer or "")
        if current is None:
            return peer
        hops = [h for header in forwarded_for for h in header.split(",") if h.strip()]
        while self.trusted(current) and hops:
            previous = _address(hops.pop())
            if previous is None:  # garbage from an untrusted hop: stop at the proxy
                break
            current = previous
        return str(current)

    def scheme(self, peer: str | None, scheme: str, forwarded_proto: str | None) -> str:
        """`https` when the trusted proxy next to us says the client used it."""
        if forwarded_proto and self.trusted(_address(peer or "")):
            said = forwarded_proto.split(",")[-1].strip().lower()
            if said in ("http", "https"):
                return said
        return scheme


def forwarded_middleware(proxies: TrustedProxies) -> Middleware:
    """Make `request.remote` the client and `request.secure` its scheme, for every handler."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = request.remote
        remote = proxies.client(peer, request.headers.getall("X-Forwarded-For", []))
        scheme = proxies.scheme(peer, request.scheme, request.headers.get("X-Forwarded-Proto"))
        if remote is not None and (remote != peer or scheme != request.scheme):
            request = request.clone(remote=remote, scheme=scheme)
        return await handler(request)

    return middleware
