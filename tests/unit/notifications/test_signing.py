from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from svix.webhooks import Webhook, WebhookVerificationError

from notifications.signing import new_secret, signature_headers

BODY = json.dumps({"id": "msg_1", "type": "invoice.finalized", "data": {"total": "12.50"}})


def test_new_secret_is_a_whsec_of_24_random_bytes() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 24
    assert len({new_secret() for _ in range(50)}) == 50
    Webhook(secret)  # svix accepts the format


def test_headers_follow_standard_webhooks() -> None:
    at = datetime(2026, 4, 10, 12, 0, 0, 900_000, tzinfo=UTC)
    headers = signature_headers("msg_1", at, BODY, [new_secret(), new_secret()])
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == "1775822400"  # floored unix seconds
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert all(s.startswith("v1,") for s in signatures)


def test_svix_verifies_with_the_current_and_the_previous_secret() -> None:
    current, previous = new_secret(), new_secret()
    headers = signature_headers("msg_1", datetime.now(UTC), BODY, [current, previous])
    for secret in (current, previous):
        Webhook(secret).verify(BODY, headers)
        Webhook(secret).verify(BODY.encode(), headers)


def test_current_secret_signs_first() -> None:
    current, previous = new_secret(), new_secret()
    at = datetime.now(UTC)
    both = signature_headers("msg_1", at, BODY, [current, previous])
    only_current = signature_headers("msg_1", at, BODY, [current])
    assert both["webhook-signature"].split(" ")[0] == only_current["webhook-signature"]


def test_svix_rejects_a_tampered_body_or_an_unknown_secret() -> None:
    secret = new_secret()
    headers = signature_headers("msg_1", datetime.now(UTC), BODY, [secret])
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace("12.50", "1250"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-id": "msg_2"})


def test_a_non_utc_timestamp_signs_the_same_instant() -> None:
    utc = datetime.now(UTC).replace(microsecond=0)
    paris = utc.astimezone(timezone(timedelta(hours=2)))
    secret = new_secret()
    assert signature_headers("m", paris, BODY, [secret]) == signature_headers(
        "m", utc, BODY, [secret]
    )
    Webhook(secret).verify(BODY, signature_headers("m", paris, BODY, [secret]))


def test_signature_is_stable_for_a_given_message() -> None:
    secret = new_secret()
    at = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)
    assert signature_headers("msg_1", at, BODY, [secret]) == signature_headers(
        "msg_1", at, BODY, [secret]
    )


def test_bad_arguments_are_programming_errors() -> None:
    at = datetime.now(UTC)
    with pytest.raises(ValueError, match="secret"):
        signature_headers("msg_1", at, BODY, [])
    with pytest.raises(TypeError):
        signature_headers("msg_1", at, BODY, new_secret())
    with pytest.raises(ValueError, match="timezone-aware"):
        signature_headers("msg_1", datetime(2026, 4, 10), BODY, [new_secret()])
    with pytest.raises(ValueError, match="message_id"):
        signature_headers("", at, BODY, [new_secret()])
