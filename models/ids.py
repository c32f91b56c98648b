"""Public object ids: a kind prefix and 26 characters that sort by creation time.

The characters are Crockford base32 (ASCII-ordered) of a 48-bit millisecond timestamp and
80 bits that are random for each new millisecond and incremented within one, so ids made
by one process sort in creation order (lists break ties on equal times by id).
"""

from __future__ import annotations

import secrets
import threading
import time

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_lock = threading.Lock()
_last = [0, 0]  # milliseconds, 80-bit tail


def _encode(value: int) -> str:
    return "".join(ALPHABET[(value >> shift) & 31] for shift in range(125, -1, -5))


def new_id(prefix: str) -> str:
    with _lock:
        millis = time.time_ns() // 1_000_000
        if millis <= _last[0]:
            millis, tail = _last[0], _last[1] + 1
        else:
            tail = secrets.randbits(80)
        _last[:] = [millis, tail]
    return f"{prefix}_{_encode((millis << 80) | (tail & ((1 << 80) - 1)))}"
