from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from billing.errors import ValidationError
from notifications.sender import send
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
        "[::ffff:7f00:1]",  # IPv4-mapped, in hex
        "[0:0:0:0:0:ffff:127.0.0.1]",  # IPv4-mapped, uncompressed
        "[::ffff:0:127.0.0.1]",  # IPv4-translated (RFC 2765)
        "[0:0:0:0:0:0:0:1]",  # loopback, uncompressed
        "[::0.0.0.1]",  # loopback, in dotted form
        "[::1%25lo]",  # loopback with a zone
        "[fd00::1]",  # unique local
        "[100::1]",  # discard-only
        "[2001:db8::1]",  # documentation
        "[2001::1]",  # Teredo, no global IPv4 behind it
        "[64:ff9b::7f00:1]",  # NAT64 of 127.0.0.1
        "[64:ff9b:1::a9fe:a9fe]",  # local-use NAT64 of 169.254.169.254
        "[2002:c0a8:101::1]",  # 6to4 of 192.168.1.1
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


# --- numeric IPv4 forms, names and URL tricks (the real resolver: no network is needed) ----


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",  # decimal
        "http://0x7f000001/",  # hexadecimal
        "http://017700000001/",  # octal
        "http://0x7f.0.0.1/",  # hexadecimal first octet
        "http://0x7f.1/",
        "http://127.1/",  # short form
        "http://0/",  # 0.0.0.0
        "http://127.0.0.1./",  # trailing dot
        "HTTP://127.0.0.1/",  # uppercase scheme
        "http://127.0.0.1#@evil.com/",  # the fragment hides nothing: the host is 127.0.0.1
        "http://127.0.0.1:8080?@evil.com/",
        "http://LOCALHOST:9000/hook",  # uppercase name
        "http://localhost/",
    ],
)
async def test_numeric_ipv4_forms_and_loopback_names_are_refused(url: str) -> None:
    """Forms the C resolver reads as 127.0.0.1 (or 0.0.0.0) are resolved as the sender's
    resolver would, and refused for the address they reach."""
    with pytest.raises(ValidationError) as caught:
        await check_destination(url, [])
    assert caught.value.field == "url"
    assert "non-public address" in caught.value.message, caught.value.message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://0177.0.0.1/", "is not a valid URL"),  # octal octets: httpx refuses them
        ("http://127.000.000.001/", "is not a valid URL"),
        ("http://evil.com@127.0.0.1/", "must not contain credentials"),
        ("http://127.0.0.1:80@evil.com/", "must not contain credentials"),
        ("http://evil.com%2F@127.0.0.1/", "must not contain credentials"),
        ("http://127.0.0.1\\@evil.com/", "must not contain credentials"),
        ("http://ⓛocalhost/", "is not a valid URL"),  # circled l: no IDNA mapping to localhost
        ("http://１２７.０.０.１/", "is not a valid URL"),  # fullwidth
        ("http://xn--localhost-/", "is not a valid URL"),  # an invalid A-label
        ("http://xn--/", "is not a valid URL"),
    ],
)
def test_url_tricks_are_refused_before_any_resolution(url: str, expected: str) -> None:
    assert expected in reason(url)


async def test_a_trailing_dot_on_an_allowed_name_is_the_same_name() -> None:
    await check_destination("http://LocalHost.:9000/hook", ["localhost"])
    with pytest.raises(ValidationError):
        await check_destination("http://localhost.:9000/hook", [])


@pytest.mark.parametrize(
    ("host", "addresses"),
    [
        ("metadata.example", ["169.254.169.254"]),
        ("loopback.example", ["127.0.0.1"]),
        ("loopback6.example", ["::1"]),
        ("private.example", ["192.168.0.10"]),
        ("cgnat.example", ["100.64.1.1"]),
        ("mapped.example", ["::ffff:10.0.0.1"]),
        ("nat64.example", ["64:ff9b::a9fe:a9fe"]),
        ("unspecified.example", ["0.0.0.0"]),
        ("second.example", ["1.1.1.1", "::1"]),  # one private answer is enough
    ],
)
async def test_names_that_resolve_to_private_addresses_are_refused(
    host: str, addresses: list[str], fake_dns: Callable[[dict[str, list[str]]], list[str]]
) -> None:
    lookups = fake_dns({host: addresses, f"{host}.": addresses})  # a real resolver's view
    for url in (f"https://{host}/hook", f"https://{host.upper()}./hook"):
        with pytest.raises(ValidationError, match="non-public address"):
            await check_destination(url, [])
    assert lookups == [f"{host}:443", f"{host}.:443"]


async def test_an_idna_name_is_resolved_by_its_a_label(
    fake_dns: Callable[[dict[str, list[str]]], list[str]],
) -> None:
    lookups = fake_dns({"xn--bcher-kva.example": ["10.0.0.1"]})
    with pytest.raises(ValidationError, match=r"10\.0\.0\.1"):
        await check_destination("https://b\u00fccher.example/hook", [])
    assert lookups == ["xn--bcher-kva.example:443"]


async def test_the_address_to_connect_to_is_the_one_checked(
    fake_dns: Callable[[dict[str, list[str]]], list[str]],
) -> None:
    fake_dns({"hooks.example": ["93.184.216.34", "2606:2800:220:1::1"]})
    assert await check_destination("https://hooks.example/x", []) == ipaddress.ip_address(
        "93.184.216.34"
    )
    assert await check_destination("http://[2606:4700::1111]/", []) == ipaddress.ip_address(
        "2606:4700::1111"
    )
    assert await check_destination("http://hooks.example/", ["hooks.example"]) is None


# --- DNS rebinding: the sender connects to the address that was checked -------------------


@dataclass
class Head:
    """The request line and headers a local server received."""

    line: str
    headers: dict[str, str]


async def serve_once(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, heads: list[Head]
) -> None:
    line = (await reader.readline()).decode().strip()
    headers: dict[str, str] = {}
    while (raw := (await reader.readline()).decode().strip()) != "":
        name, value = raw.split(":", 1)
        headers[name.strip().lower()] = value.strip()
    await reader.readexactly(int(headers.get("content-length", "0")))
    heads.append(Head(line, headers))
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    await writer.drain()
    writer.close()


def rebinding(monkeypatch: pytest.MonkeyPatch, name: str, first: str, then: str) -> list[str]:
    """A resolver under an attacker's control: ``name`` is ``first`` at the first lookup
    (the check), ``then`` at every later one (the connect, were it to resolve again)."""
    lookups: list[str] = []

    async def getaddrinfo(host: str | bytes, port: int, **_: object) -> list[AddrInfo]:
        host = host.decode() if isinstance(host, bytes) else host  # anyio passes bytes
        lookups.append(host)
        if host != name:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        address = first if len(lookups) == 1 else then
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    return lookups


async def test_a_rebinding_name_cannot_move_the_connection_after_the_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The name answers 127.0.0.1 (allowed here) at the check, then 127.0.0.2 (not
    allowed). The sender connects to the checked address without resolving again, and
    sends the URL's Host. Without the pin, it resolves again and goes elsewhere."""
    heads: list[Head] = []
    server = await asyncio.start_server(lambda r, w: serve_once(r, w, heads), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://rebind.example:{port}/hook"
    lookups = rebinding(monkeypatch, "rebind.example", "127.0.0.1", "127.0.0.2")
    async with server, httpx.AsyncClient() as client:
        checked = await check_destination(url, ["127.0.0.1/32"])
        assert checked == ipaddress.ip_address("127.0.0.1")
        pinned = await send(client, url, {}, b"{}", 5.0, connect_to=str(checked))
        assert pinned.succeeded, pinned
        assert lookups == ["rebind.example"]  # the check's only
        (head,) = heads
        assert head.line == "POST /hook HTTP/1.1"
        assert head.headers["host"] == f"rebind.example:{port}"
        unpinned = await send(client, url, {}, b"{}", 5.0)  # what pinning prevents
        assert lookups == ["rebind.example", "rebind.example"]
        assert not unpinned.succeeded and len(heads) == 1


def certificate_for(name: str, directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``name``: (certificate, key) PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_over_tls_the_pinned_connection_checks_the_certificate_of_the_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connected to the checked address, TLS still sends the URL's name (SNI) and checks
    the certificate against it: a certificate for another name fails the attempt."""
    cert, key = certificate_for("hooks.example", tmp_path)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    names: list[str | None] = []
    served.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment,func-returns-value]
    heads: list[Head] = []
    server = await asyncio.start_server(
        lambda r, w: serve_once(r, w, heads), "127.0.0.1", 0, ssl=served
    )
    port = server.sockets[0].getsockname()[1]
    rebinding(monkeypatch, "hooks.example", "127.0.0.1", "127.0.0.2")
    trusted = ssl.create_default_context(cafile=str(cert))
    async with server:
        async with httpx.AsyncClient(verify=trusted) as client:
            url = f"https://hooks.example:{port}/hook"
            checked = await check_destination(url, ["127.0.0.1/32"])
            attempt = await send(client, url, {}, b"{}", 5.0, connect_to=str(checked))
            assert attempt.succeeded, attempt
            assert names == ["hooks.example"]
            assert heads[0].headers["host"] == f"hooks.example:{port}"
        async with httpx.AsyncClient(verify=trusted) as client:
            other = f"https://other.example:{port}/hook"  # the same address, another name
            refused = await send(client, other, {}, b"{}", 5.0, connect_to="127.0.0.1")
            assert not refused.succeeded and "certificate" in (refused.error or "").lower()
        assert names == ["hooks.example", "other.example"]
