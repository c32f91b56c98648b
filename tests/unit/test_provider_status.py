"""Payment status moves reported by Stripe, and the validation of Stripe settings
(SPEC §11): pure rules of billing.provider_invoice and billing.validation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.errors import ValidationError
from billing.provider_invoice import (
    PROVIDER_EVENTS,
    PaymentStatus,
    SyncStatus,
    next_payment_status,
)
from billing.validation import validate_stripe_settings

# --- payment status -------------------------------------------------------------------------

P = PaymentStatus
REPORTED = (P.OPEN, P.PAID, P.PAYMENT_FAILED, P.VOID)
"""What can be reported: ``open`` by the push itself, the rest by Stripe's events."""

TABLE = {
    # (current, reported): next
    (P.NONE, P.OPEN): P.OPEN,
    (P.NONE, P.PAID): P.PAID,
    (P.NONE, P.PAYMENT_FAILED): P.PAYMENT_FAILED,
    (P.NONE, P.VOID): P.VOID,
    (P.OPEN, P.OPEN): P.OPEN,
    (P.OPEN, P.PAID): P.PAID,
    (P.OPEN, P.PAYMENT_FAILED): P.PAYMENT_FAILED,
    (P.OPEN, P.VOID): P.VOID,
    # a payment event that beat the push's own bookkeeping is kept
    (P.PAYMENT_FAILED, P.OPEN): P.PAYMENT_FAILED,
    (P.PAYMENT_FAILED, P.PAID): P.PAID,  # a retried payment succeeded
    (P.PAYMENT_FAILED, P.PAYMENT_FAILED): P.PAYMENT_FAILED,
    (P.PAYMENT_FAILED, P.VOID): P.VOID,
    # final
    (P.PAID, P.OPEN): P.PAID,
    (P.PAID, P.PAID): P.PAID,
    (P.PAID, P.PAYMENT_FAILED): P.PAID,  # a late failure never undoes a payment
    (P.PAID, P.VOID): P.PAID,
    (P.VOID, P.OPEN): P.VOID,
    (P.VOID, P.PAID): P.VOID,
    (P.VOID, P.PAYMENT_FAILED): P.VOID,
    (P.VOID, P.VOID): P.VOID,
}


def test_the_table_covers_every_current_status_and_every_report() -> None:
    assert set(TABLE) == {(current, reported) for current in P for reported in REPORTED}


@pytest.mark.parametrize(("current", "reported"), sorted(TABLE))
def test_next_payment_status(current: PaymentStatus, reported: PaymentStatus) -> None:
    assert next_payment_status(current, reported) is TABLE[current, reported]


@given(st.lists(st.sampled_from(REPORTED), max_size=10))
def test_any_order_of_reports_ends_in_the_first_final_one(reports: list[PaymentStatus]) -> None:
    """Events arrive out of order: whichever of paid / void came first stands; before any,
    a failure stands over ``open``, and ``open`` only leaves ``none``."""
    status = P.NONE
    for reported in reports:
        status = next_payment_status(status, reported)
    finals = [r for r in reports if r in (P.PAID, P.VOID)]
    if finals:
        assert status is finals[0]
    elif P.PAYMENT_FAILED in reports:
        assert status is P.PAYMENT_FAILED
    elif P.OPEN in reports:
        assert status is P.OPEN
    else:
        assert status is P.NONE


def test_the_stripe_events_that_move_a_payment() -> None:
    assert PROVIDER_EVENTS == {
        "invoice.paid": P.PAID,
        "invoice.payment_succeeded": P.PAID,
        "invoice.payment_failed": P.PAYMENT_FAILED,
        "invoice.marked_uncollectible": P.PAYMENT_FAILED,
        "invoice.voided": P.VOID,
    }
    assert "invoice.finalized" not in PROVIDER_EVENTS


def test_the_status_values_are_the_stored_ones() -> None:
    assert [s.value for s in SyncStatus] == [
        "pending",
        "synced",
        "skipped",
        "billing_provider_error",
    ]
    assert [s.value for s in P] == ["none", "open", "paid", "payment_failed", "void"]


# --- Stripe settings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret_key", "webhook_secret"),
    [
        ("sk_test_4eC39HqLyjWDarjtT1zdp7dc", None),
        ("sk_live_abc", "whsec_abc"),
        ("rk_test_restricted", "whsec_x"),
        ("rk_live_r", None),
        ("sk_", "whsec_"),
        ("sk_" + "a" * 252, "whsec_" + "b" * 249),  # 255 characters each
    ],
)
def test_stripe_settings_accepted(secret_key: str, webhook_secret: str | None) -> None:
    validate_stripe_settings(secret_key, webhook_secret)


@pytest.mark.parametrize(
    ("secret_key", "webhook_secret", "field"),
    [
        ("pk_test_publishable", None, "secret_key"),
        ("whsec_abc", None, "secret_key"),
        ("", None, "secret_key"),
        ("SK_TEST_ABC", None, "secret_key"),
        ("sk test", None, "secret_key"),
        ("sk_test_ab c", None, "secret_key"),
        (" sk_test_abc", None, "secret_key"),
        ("sk_test_abc\n", None, "secret_key"),
        ("sk_test\tabc", None, "secret_key"),
        ("sk_test_\u00a0abc", None, "secret_key"),
        ("sk_" + "a" * 253, None, "secret_key"),  # 256 characters
        ("sk_test_abc", "", "webhook_signing_secret"),
        ("sk_test_abc", "sk_test_abc", "webhook_signing_secret"),
        ("sk_test_abc", "whsec abc", "webhook_signing_secret"),
        ("sk_test_abc", "whsec_abc ", "webhook_signing_secret"),
        ("sk_test_abc", "whsec_" + "b" * 250, "webhook_signing_secret"),  # 256 characters
    ],
)
def test_stripe_settings_refused(secret_key: str, webhook_secret: str | None, field: str) -> None:
    with pytest.raises(ValidationError) as error:
        validate_stripe_settings(secret_key, webhook_secret)
    assert (error.value.field, error.value.code) == (field, "VALIDATION")


def keys() -> st.SearchStrategy[str]:
    """Strings that often start like a Stripe key (or nearly), with any characters after."""
    prefixes = st.sampled_from(["sk_", "rk_", "whsec_", "pk_", "sk", "", " sk_"])
    tails = st.text(max_size=40) | st.text(alphabet="ab_1", min_size=240, max_size=260)
    return st.tuples(prefixes, tails).map("".join)


@settings(max_examples=300)
@given(keys(), st.none() | keys())
def test_stripe_settings_accept_exactly_well_formed_keys(
    secret_key: str, webhook_secret: str | None
) -> None:
    def well_formed(value: str, prefixes: tuple[str, ...]) -> bool:
        return (
            value.startswith(prefixes) and len(value) <= 255 and not any(c.isspace() for c in value)
        )

    ok = well_formed(secret_key, ("sk_", "rk_")) and (
        webhook_secret is None or well_formed(webhook_secret, ("whsec_",))
    )
    if ok:
        validate_stripe_settings(secret_key, webhook_secret)
    else:
        with pytest.raises(ValidationError):
            validate_stripe_settings(secret_key, webhook_secret)
