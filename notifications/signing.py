"""Webhook signing (SPEC §10): Standard Webhooks headers made with the ``svix`` library,
so a receiver's ``svix.webhooks.Webhook(secret).verify(body, headers)`` accepts them."""

from __future__ import annotations

import base64
import math
import secrets as _random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from svix.webhooks import Webhook

SECRET_PREFIX: Final = "whsec_"
SECRET_BYTES: Final = 24


def new_secret() -> str:
    """A fresh endpoint signing secret: ``"whsec_"`` + standard base64 of 24 random bytes
    (32 characters, no padding), drawn from :mod:`secrets`; the format
    ``svix.webhooks.Webhook(secret)`` accepts."""
    raw = _random.token_bytes(SECRET_BYTES)
    return SECRET_PREFIX + base64.b64encode(raw).decode("ascii")


def signature_headers(
    message_id: str,
    timestamp: datetime,
    body: str,
    secrets: Sequence[str],
) -> dict[str, str]:
    """The Standard Webhooks headers of one delivery attempt.

    - ``webhook-id``: ``message_id`` (stable across retries of a message);
    - ``webhook-timestamp``: ``timestamp`` in whole unix seconds (floored), UTC;
    - ``webhook-signature``: one ``v1,<base64 HMAC-SHA256>`` per secret, space-separated,
      in the order given (current secret first, then a previous one still within its
      rotation overlap).

    ``body`` is the exact text sent (the signature covers ``id.timestamp.body``).
    ``timestamp`` must be timezone-aware; it is converted to UTC before signing (svix
    would otherwise re-label a non-UTC time as UTC). Raises ``ValueError`` for an empty
    ``message_id``, a naive timestamp or no secrets.
    """
    if not message_id:
        raise ValueError("message_id must not be empty")
    if timestamp.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    if isinstance(secrets, str):
        raise TypeError("secrets must be a sequence of secrets, not one string")
    if not secrets:
        raise ValueError("at least one secret is needed")
    at = timestamp.astimezone(UTC)
    signatures = [Webhook(secret).sign(message_id, at, body) for secret in secrets]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(math.floor(at.timestamp())),
        "webhook-signature": " ".join(signatures),
    }
