from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence

import pytest

from billing.errors import ValidationError
from notifications.ssrf import check_destination, check_url

AddrInfo = tuple[int, int, int, str, tuple[str, int] | tuple[str, int, int, int]]


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, list[str]]], list[str]]:
    """Replace the running loop's resolver with a fixed table; returns the lookups made."""
    lookups: list[str] = []

    def install(table: dict[str, list[str]]) -> list[str]:
        async def getaddrinfo(host: str, port: int, **_: object) -> list[AddrInfo]:
            lookups.append(f"{host}:{port}")
            if host not in table:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            infos: list[AddrInfo] = []
            for address in table[host]:
                if ":" in address:
                    infos.append(
                        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
                    )
                else:
                    infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
            return infos

        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
        return lookups

    return install


def reason(url: str) -> str:
    with pytest.raises(ValidationError) as caught:
        check_url(url)
    assert caught.value.field == "url"
    return caught.value.message


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/meterline",
        "http://hooks.example.com:8080/x?y=1",
        "HTTPS://Hooks.Example.com",
        "http://203.0.113.7/",
        "http://[2606:4700::1111]/",
        "https://exämple.com/",
        "https://example.com/" + "a" * (2000 - len("https://example.com/")),
    ],
)
def test_check_url_accepts_http_and_https(url: str) -> None:
    check_url(url)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ftp://example.com/", "scheme must be http or https, not ftp"),
        ("javascript:alert(1)", "scheme must be http or https"),
        ("file:///etc/passwd", "scheme must be http or https, not file"),
        ("example.com/hook", "scheme must be http or https, not none"),
        ("http:///path", "has no host"),
        ("https://user:pass@example.com/", "must not contain credentials"),
        ("https://token@example.com/", "must not contain credentials"),
        ("http://a\\@127.0.0.1/", "must not contain credentials"),
        ("https://example.com:0/", "port 0 is out of range"),
        ("https://example.com:70000/", "port 70000 is out of range"),
        ("https://example.com/" + "a" * 2000, "longer than 2000 characters"),
        ("https://exa mple.com\t/", "is not a valid URL"),
    ],
)
def test_check_url_refuses_with_a_clear_reason(url: str, expected: str) -> None:
    assert expected in reason(url)


@pytest.mark.parametrize(
    "host",
    [
        "8.8.8.8",
        "203.0.114.1",
        "[2606:4700:4700::1111]",
        "[2a00:1450:4001:80b::200e]",
    ],
)
async def test_public_ip_literals_pass_without_dns(
    host: str, fake_dns: Callable[[dict[str, list[str]]], list[str]]
) -> None:
    lookups = fake_dns({})
    await check_destination(f"https://{host}/hook", [])
    assert lookups == []


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",  # loopback
        "10.1.2.3",  # private
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # link-local (cloud metadata)
        "100.64.0.1",  # shared address space
        "100.127.255.254",
        "0.0.0.0",  # unspecified
        "224.0.0.1",  # multicast
        "239.255.255.250",
        "240.0.0.1",  # reserved
        "255.255.255.255",
        "192.0.2.1",  # documentation
        "198.18.0.1",  # benchmarking
        "[::1]",
        "[::]",
        "[fe80::1]",
        "[fe80::1%25eth0]",
        "[fc00::1]",  # unique local
        "[fec0::1]",  # site-local
        "[ff02::1]",  # multicast
        "[::ffff:127.0.0.1]",  # IPv4-mapped
        "[::ffff:10.0.0.1]",
        "[::127.0.0.1]",  # IPv4-compatible
        "[2002:7f00:1::]",  # 6to4 of 127.0.0.1
        "[2002:a9fe:a9fe::1]",  # 6to4 of 169.254.169.254
        "[64:ff9b::a00:1]",  # NAT64 of 10.0.0.1
        "[2001:0:4136:e378:8000:63bf:3fff:fdd2]",  # Teredo
    ],
)
async def test_non_public_ip_literals_are_refused(host: str) -> None:
    with pytest.raises(ValidationError) as caught:
        await check_destination(f"http://{host}:8080/hook", [])
    assert caught.value.field == "url"
    assert "non-public address" in caught.value.message


async def test_every_resolved_address_must_be_public(
    fake_dns: Callable[[dict[str, list[str]]], list[str]],
) -> None:
    lookups = fake_dns(
        {
            "public.example": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
            "mixed.example": ["93.184.216.34", "10.0.0.5"],
            "sneaky.example": ["2606:2800:220:1::1", "::ffff:169.254.169.254"],
        }
    )
    await check_destination("https://public.example/hook", [])
    with pytest.raises(ValidationError, match=r"'mixed\.example'.*10\.0\.0\.5"):
        await check_destination("https://mixed.example/hook", [])
    with pytest.raises(ValidationError, match="::ffff:a9fe:a9fe"):
        await check_destination("https://sneaky.example/hook", [])
    assert lookups == ["public.example:443", "mixed.example:443", "sneaky.example:443"]


async def test_resolution_uses_the_url_port_or_the_scheme_default(
    fake_dns: Callable[[dict[str, list[str]]], list[str]],
) -> None:
    lookups = fake_dns({"a.example": ["93.184.216.34"]})
    await check_destination("http://a.example/", [])
    await check_destination("https://a.example:8443/", [])
    assert lookups == ["a.example:80", "a.example:8443"]


async def test_a_host_that_does_not_resolve_is_refused(
    fake_dns: Callable[[dict[str, list[str]]], list[str]],
) -> None:
    fake_dns({})
    with pytest.raises(ValidationError) as caught:
        await check_destination("https://nowhere.invalid/hook", [])
    assert caught.value.field == "url"
    assert caught.value.message == "host 'nowhere.invalid' does not resolve"


async def test_syntax_is_checked_before_resolution(
    fake_dns: Callable[[dict[str, list[str]]], list[str]],
) -> None:
    lookups = fake_dns({"a.example": ["93.184.216.34"]})
    with pytest.raises(ValidationError, match="credentials"):
        await check_destination("https://u:p@a.example/", ["a.example"])
    assert lookups == []


async def test_real_localhost_is_refused_unless_allowed() -> None:
    with pytest.raises(ValidationError, match="non-public address"):
        await check_destination("http://localhost:9000/hook", [])
    await check_destination("http://localhost:9000/hook", ["127.0.0.0/8", "::1/128"])
    await check_destination("http://LOCALHOST.:9000/hook", ["localhost"])


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8000/", ["127.0.0.0/8"]),
        ("http://127.0.0.1:8000/", ["127.0.0.1"]),
        ("http://[::1]:8000/", ["::1/128"]),
        ("http://[::1]:8000/", ["::1"]),
        ("http://[::ffff:127.0.0.1]/", ["127.0.0.0/8"]),
        ("http://10.20.30.40/", ["10.0.0.0/8"]),
        ("http://192.168.1.9/", [" 192.168.1.0/24 "]),
        ("http://internal.corp/", ["Internal.Corp"]),
    ],
)
async def test_allowed_entries_open_exceptions(
    url: str, allowed: Sequence[str], fake_dns: Callable[[dict[str, list[str]]], list[str]]
) -> None:
    lookups = fake_dns({"internal.corp": ["10.9.9.9"]})
    await check_destination(url, allowed)
    assert lookups == []  # IP literals and hosts allowed by name need no DNS


async def test_allowed_networks_only_cover_their_own_addresses(
    fake_dns: Callable[[dict[str, list[str]]], list[str]],
) -> None:
    fake_dns({"internal.corp": ["10.9.9.9", "192.168.0.1"], "other.corp": ["10.9.9.9"]})
    await check_destination("http://internal.corp/", ["10.0.0.0/8", "192.168.0.0/16"])
    with pytest.raises(ValidationError, match=r"192\.168\.0\.1"):
        await check_destination("http://internal.corp/", ["10.0.0.0/8"])
    with pytest.raises(ValidationError, match=r"127\.0\.0\.2"):
        await check_destination("http://127.0.0.2/", ["127.0.0.1", "other.corp"])
    with pytest.raises(ValidationError, match=r"10\.9\.9\.9"):
        await check_destination("http://other.corp/", ["internal.corp"])


async def test_a_malformed_allowed_network_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="not a valid network"):
        await check_destination("http://127.0.0.1/", ["127.0.0.0/33"])
