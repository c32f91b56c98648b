"""SSRF guard for webhook endpoint URLs (SPEC §10).

A URL must be http(s) and every address its host resolves to must be public, unless the
installation allows it explicitly (loopback in tests, a private network on-premises).
URLs are parsed with ``httpx.URL``, the parser the sender uses, so the host checked is
the host connected to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from typing import Final

import httpx

from billing.errors import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH: Final = 2000
SCHEMES: Final = frozenset({"http", "https"})
DEFAULT_PORTS: Final = {"http": 80, "https": 443}

_SHARED_ADDRESS_SPACE: Final = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64_PREFIXES: Final = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
)
_IPV4_COMPATIBLE: Final = ipaddress.IPv6Network("::/96")


def check_url(url: str) -> None:
    """Check a webhook URL's syntax (no DNS): at most 2,000 characters, scheme ``http``
    or ``https``, a host, no userinfo (``user:pass@``), a port (if any) in 1–65535.

    Raises ``ValidationError("url", reason)``.
    """
    _parse(url)


async def check_destination(url: str, allowed: Sequence[str] = ()) -> IPAddress | None:
    """Check a webhook URL and where it leads: :func:`check_url`, then every address the
    host resolves to (``getaddrinfo`` on the URL's port, or the scheme's default) must be
    public. Refused: private, loopback, link-local, site-local, reserved, multicast,
    unspecified, shared address space (100.64.0.0/10), and IPv6 forms embedding such an
    IPv4 address (IPv4-mapped, IPv4-compatible, 6to4, Teredo, NAT64).

    Returns the address to connect to: the IP literal, or the first address resolved, so
    the sender connects to an address that was checked and never resolves the name again
    (no DNS rebinding between check and connect); None for a host allowed by name, which
    is connected to by name.

    ``allowed`` lists exceptions of the installation: a hostname (exact match,
    case-insensitive, trailing dot ignored) is allowed whatever it resolves to and is not
    resolved; an IP address or CIDR network (``"127.0.0.0/8"``, ``"::1/128"``) allows the
    addresses inside it (an IPv4-mapped IPv6 address matches by its IPv4 form). An IP
    literal host is checked without DNS.

    Raises ``ValidationError("url", reason)``; ``ValueError`` for a malformed CIDR entry in
    ``allowed`` (a configuration error).
    """
    parsed = _parse(url)
    host = _normalise_host(parsed.host)
    names, networks = _parse_allowed(allowed)
    if host in names:
        return None
    literal = _ip_literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        port = parsed.port or DEFAULT_PORTS[parsed.scheme]
        addresses = await _resolve(parsed.raw_host.decode("ascii"), port)
    for address in addresses:
        if _is_public(address) or _in_networks(address, networks):
            continue
        raise ValidationError(
            "url", f"host {host!r} resolves to non-public address {address} (not allowed)"
        )
    return addresses[0]


def _parse(url: str) -> httpx.URL:
    if len(url) > MAX_URL_LENGTH:
        raise ValidationError("url", f"is longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url)
        host = parsed.host  # decodes an IDNA A-label, which may be invalid ("xn--a-")
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise ValidationError("url", f"is not a valid URL: {exc}") from None
    if parsed.scheme not in SCHEMES:
        shown = parsed.scheme or "none"
        raise ValidationError("url", f"scheme must be http or https, not {shown}")
    if not host:
        raise ValidationError("url", "has no host")
    if parsed.userinfo:
        raise ValidationError("url", "must not contain credentials (user:password@)")
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise ValidationError("url", f"port {parsed.port} is out of range 1-65535")
    return parsed


def _normalise_host(host: str) -> str:
    return host.lower().rstrip(".")


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def _parse_allowed(allowed: Sequence[str]) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for entry in allowed:
        text = entry.strip()
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            if "/" in text:
                raise ValueError(f"allowed entry {entry!r} is not a valid network") from None
            names.add(_normalise_host(text))
    return frozenset(names), tuple(networks)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        infos = []
    addresses: list[IPAddress] = []
    for info in infos:
        address = _ip_literal(str(info[4][0]))
        if address is not None:
            addresses.append(address)
    if not addresses:
        raise ValidationError("url", f"host {host!r} does not resolve")
    return addresses


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    embedded: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        embedded.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        embedded.append(address.sixtofour)
    if address.teredo is not None:
        embedded.append(address.teredo[1])
    if address in _IPV4_COMPATIBLE or any(address in net for net in _NAT64_PREFIXES):
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return embedded


def _is_public(address: IPAddress) -> bool:
    if not address.is_global or (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
    ):
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return address not in _SHARED_ADDRESS_SPACE
    if address.is_site_local:
        return False
    return all(_is_public(v4) for v4 in _embedded_ipv4(address))


def _in_networks(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    return any(
        candidate.version == network.version and candidate in network
        for candidate in candidates
        for network in networks
    )
