"""Hypothesis strategies for ``POST /v1/ingest`` bodies (tests/faults/test_fuzz_ingest.py):
events with good and bad fields, and whole bodies damaged, packed and authenticated in
every way, as bytes we control to the last one (``Raw`` JSON text, repeated keys)."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from tests.conftest import START

MIB = 1024 * 1024
ALIAS = "cust-1"

# --- JSON text we control to the byte ----------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """JSON text written as is (``NaN``, ``1e999``, ``-0``, 10,000 nested arrays…)."""

    text: str


@dataclass(frozen=True)
class Obj:
    """A JSON object whose keys may repeat (the last one wins when decoded)."""

    pairs: tuple[tuple[str, Any], ...]


def dumps(value: Any, ascii_only: bool = True) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Obj | dict):
        pairs = value.pairs if isinstance(value, Obj) else tuple(value.items())
        return (
            "{"
            + ",".join(
                f"{json.dumps(k, ensure_ascii=ascii_only)}:{dumps(v, ascii_only)}" for k, v in pairs
            )
            + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def encode(value: Any, ascii_only: bool = True) -> bytes:
    # lone surrogates written raw (ascii_only=False) make invalid UTF-8, on purpose
    return dumps(value, ascii_only).encode("utf-8", "surrogatepass")


def nested_arrays(depth: int) -> Raw:
    return Raw("[" * depth + "]" * depth)


def nested_objects(depth: int) -> Raw:
    return Raw('{"a":' * depth + "1" + "}" * depth)


# --- strategies --------------------------------------------------------------------------

MISSING = Raw("")  # the field is left out
ids = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Z")), min_size=1, max_size=128
)
known_tx = st.sampled_from([f"tx-{i}" for i in range(40)])  # repeats across examples: duplicates
numbers = st.one_of(
    st.integers(-(10**40), 10**40),
    st.sampled_from(["0.1", "-0", "-0.0", "1e999", "1E-999", "2.5e3", "-1e-7", "1" + "0" * 200]),
    st.integers(1, 400).map(lambda n: "0." + "3" * n),
).map(lambda n: Raw(str(n)))
deep = st.sampled_from([2, 64, 900, 10_000]).flatmap(
    lambda n: st.sampled_from([nested_arrays(n), nested_objects(n)])
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | numbers,
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3)
    ),
    max_leaves=8,
)
huge_text = st.one_of(
    st.text(min_size=129, max_size=400),
    st.integers(129, 5000).map(lambda n: "é" * n),
    st.sampled_from([MIB // 2, MIB + 1, 3 * MIB]).map(lambda n: "x" * n),
)
bad_text = st.one_of(
    st.just(MISSING),
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    numbers,
    st.sampled_from([Raw("NaN"), Raw("-Infinity"), Raw("1" * 4301)]),  # the whole body is bad
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.sampled_from(["", " ", "\t\n", "\x00", "a\x00b", "\ud800", "x\udfff"]),
    huge_text,
    deep,
)


def rfc3339(moment: datetime, offset_minutes: int, digits: int) -> str:
    local = moment + timedelta(minutes=offset_minutes)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{local.microsecond:06d}".ljust(digits, "7")[:digits]
    if offset_minutes == 0:
        return text + "Z"
    sign, size = ("+" if offset_minutes > 0 else "-"), abs(offset_minutes)
    return f"{text}{sign}{size // 60:02d}:{size % 60:02d}"


def timestamps(low: timedelta, high: timedelta) -> st.SearchStrategy[str]:
    naive = START.replace(tzinfo=None)
    return st.builds(
        lambda moment, offset, digits: rfc3339(moment.replace(tzinfo=UTC), offset, digits),
        st.datetimes(min_value=naive + low, max_value=naive + high),
        st.sampled_from([0, 0, 330, -480, 23 * 60 + 59, -(23 * 60 + 59)]),
        st.sampled_from([0, 3, 6, 9]),
    )


good_timestamp = timestamps(-timedelta(days=33), timedelta(minutes=4))
ODD_TIMESTAMPS = [
    "2026-04-10",
    "2026-04-10T12:00:00",
    "2026-04-10T12:00Z",
    "2026-13-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-04-10T25:00:00Z",
    "2026-04-10T12:00:00+24:00",
    "2026-04-10T12:00:00+05:60",
    "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:59:60Z",
    "0001-01-01T00:00:00+23:59",
    "0000-01-01T00:00:00Z",
    "1e999",
    "now",
    "２０２６-04-10T12:00:00Z",
    "2026-04-10T12:00:00.Z",
    "2026-04-10T12:00:00." + "9" * 5000 + "Z",
]
bad_timestamp = st.one_of(
    st.sampled_from(ODD_TIMESTAMPS),
    bad_text,
    timestamps(-timedelta(days=3000), -timedelta(days=35)),  # too old
    timestamps(timedelta(minutes=6), timedelta(days=3000)),  # in the future
    st.text(max_size=40),
)
property_names = st.sampled_from(["tokens", "user", "model", "region"]) | ids
good_property_value = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40),
    st.integers(-(10**30), 10**30),
    numbers,
    st.booleans(),
    st.sampled_from(["gpt-5", "gpt-5-mini", "12.5", "NaN", "-0", "1e999"]),
)
good_properties = st.dictionaries(property_names, good_property_value, max_size=6)
bad_properties = st.one_of(
    st.just(Raw("[]")),
    st.lists(st.integers(), max_size=3),
    st.text(max_size=10),
    st.integers(),
    numbers,
    deep,
    st.dictionaries(property_names, json_values, min_size=1, max_size=4).filter(
        lambda d: any(isinstance(v, list | dict) or v is None for v in d.values())
    ),
    st.dictionaries(property_names, deep, min_size=1, max_size=2),
    st.integers(101, 150).map(lambda n: {f"p{i}": i for i in range(n)}),
    st.sampled_from(
        [
            {"": "empty name"},
            {"n" * 129: "long name"},
            {"a\x00": "nul in name"},
            {"\ud800": "surrogate name"},
            {"a": "\ud800"},
            {"a": "v\x00"},
            {"a": "v" * 4097},
            {"a": None},
            {"a": {"b": "c"}},
            {"a": [1]},
        ]
    ),
)


@dataclass(frozen=True)
class Event:
    body: Obj
    valid: bool


FIELDS = {
    "transaction_id": (st.uuids().map(str) | ids | known_tx, bad_text),
    "customer_id": (st.sampled_from([ALIAS, ALIAS, "unknown-customer"]) | ids, bad_text),
    "event_type": (st.sampled_from(["api_call", "llm"]) | ids, bad_text),
    "timestamp": (good_timestamp, bad_timestamp),
    "properties": (good_properties | st.just(MISSING) | st.none(), bad_properties),
}


@st.composite
def events(draw: st.DrawFn) -> Event:
    """An event with 0 (half of them), 1 or 2 bad fields."""
    bad_count = draw(st.sampled_from([0, 0, 0, 0, 1, 1, 1, 2]))
    bad_names = draw(st.permutations(list(FIELDS)))[:bad_count]
    chosen = {
        name: draw(bad if name in bad_names else good) for name, (good, bad) in FIELDS.items()
    }
    valid = not bad_names
    pairs = [(name, value) for name, value in chosen.items() if value is not MISSING]
    if draw(st.integers(0, 9)) == 0:  # duplicate keys: a junk value first, the last one wins
        name = draw(st.sampled_from(list(chosen)))
        if chosen[name] is not MISSING:
            pairs.insert(0, (name, draw(json_values)))
    if draw(st.integers(0, 9)) == 0:  # unknown fields are ignored
        pairs.append((draw(st.text(max_size=10)), draw(json_values)))
    return Event(Obj(tuple(pairs)), valid)


def bulk(count: int) -> list[Event]:
    stamp = rfc3339(START - timedelta(hours=1), 0, 0)
    return [
        Event(
            Obj(
                (
                    ("transaction_id", f"bulk-{count}-{i}"),
                    ("customer_id", ALIAS),
                    ("event_type", "api_call"),
                    ("timestamp", stamp),
                    ("properties", {"tokens": i}),
                )
            ),
            True,
        )
        for i in range(count)
    ]


@dataclass(frozen=True)
class Body:
    content: bytes
    headers: dict[str, str | bytes]
    credential: str  # "ingest", "admin", "read", "none" or "unknown"
    events: list[Event] | None  # set when the body is the events' JSON, byte for byte


CREDENTIALS = ["ingest"] * 40 + ["admin", "read", "none", "unknown", "basic"]
ENCODINGS = [
    "deflate",
    "br",
    "gzip, gzip",
    "x-gzip",
    "identity",
    "GZIP",
    "compress",
    "\xfcn\xef".encode("latin-1"),
]


@st.composite
def bodies(draw: st.DrawFn) -> Body:
    shape = draw(st.sampled_from(["events"] * 18 + ["bulk", "not a batch"]))
    batch: list[Event] | None
    if shape == "bulk":
        batch = bulk(draw(st.sampled_from([0, 100, 101])))
    elif shape == "not a batch":
        batch = None  # not an array of objects at all
    else:
        batch = draw(st.lists(events(), min_size=1, max_size=6))
    if batch is None:
        top = draw(
            st.one_of(
                json_values,
                deep,
                st.lists(json_values, min_size=1, max_size=3),
                events().map(lambda e: e.body),
            )
        )
        content = encode(top)
    else:
        content = encode([e.body for e in batch], ascii_only=draw(st.booleans()))
    headers: dict[str, str | bytes] = {
        "Content-Type": draw(st.sampled_from(["application/json"] * 4 + ["text/plain"]))
    }
    intact = True
    damage = draw(st.sampled_from(["none"] * 27 + ["utf-8", "cut", "binary"]))
    if damage == "utf-8" and content:  # invalid UTF-8 somewhere
        at = draw(st.integers(0, len(content)))
        bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]))
        content, intact = content[:at] + bad + content[at:], False
    elif damage == "cut" and content:  # cut short
        content, intact = content[: draw(st.integers(0, len(content) - 1))], False
    elif damage == "binary":  # not JSON at all
        content, intact = draw(st.binary(max_size=300)), False
    packing = draw(
        st.sampled_from(["plain"] * 16 + ["gzip", "gzip, no header", "bad gzip", "encoding"])
    )
    if packing == "gzip":
        content = gzip.compress(content, compresslevel=1)
        headers["Content-Encoding"] = "gzip"
    elif packing == "gzip, no header":  # gzip recognised by its magic bytes alone
        content = gzip.compress(content, compresslevel=1)
    elif packing == "bad gzip":  # corrupt or truncated gzip
        packed = gzip.compress(content, compresslevel=1)
        cut = draw(st.integers(0, len(packed) - 1))
        flip = draw(st.booleans())
        content = packed[:cut] + (bytes([packed[cut] ^ 0xFF]) + packed[cut + 1 :] if flip else b"")
        headers["Content-Encoding"] = "gzip"
        intact = False
    elif packing == "encoding":  # an encoding we do not speak, or gzip claimed on a plain body
        headers["Content-Encoding"] = draw(st.sampled_from([*ENCODINGS, "gzip"]))
        intact = False
    return Body(content, headers, draw(st.sampled_from(CREDENTIALS)), batch if intact else None)
