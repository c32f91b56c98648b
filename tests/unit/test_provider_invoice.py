"""A finalized invoice as Stripe takes it (SPEC §11), pure: invoice items as integers in
Stripe's unit of the currency (its minor unit; ISK is Stripe's exception) that add up to
the invoice's total, and the amount conversions behind them (payment status moves are in
test_provider_status.py)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.errors import ValidationError
from billing.invoices import Invoice, InvoiceLine, InvoiceStatus, LineType, totals
from billing.money import MINOR_UNITS, minor_units, round_money, zero
from billing.provider_invoice import (
    PROVIDER_PLACES,
    ProviderItem,
    from_provider_amount,
    provider_amount,
    provider_items,
    provider_total,
)
from tests.unit.billing.builders import APRIL, MARCH, D

CURRENCIES = ("USD", "JPY", "KWD", "ISK")
"""Two, zero and three minor places, and ISK: no minor unit, yet two places at Stripe."""
CHARGES = (
    LineType.USAGE,
    LineType.SUBSCRIPTION,
    LineType.SCHEDULED,
    LineType.COMMIT_PURCHASE,
    LineType.COMMIT_TRUEUP,
    LineType.COMPOSITE,
)
APPLIED = (LineType.CREDIT_APPLIED, LineType.COMMIT_APPLIED)


def line(
    amount: str | Decimal,
    type: LineType = LineType.USAGE,
    name: str = "Tokens",
    quantity: str = "1",
    unit_price: str | None = None,
    group: tuple[tuple[str, str], ...] = (),
) -> InvoiceLine:
    return InvoiceLine(
        type=type,
        product_id=None if type in APPLIED else "prod_tokens",
        name=name,
        quantity=D(quantity),
        unit_price=None if unit_price is None else D(unit_price),
        amount=D(amount),
        starting_at=MARCH,
        ending_before=APRIL,
        group=group,
    )


def invoice(currency: str, *lines: InvoiceLine) -> Invoice:
    """A finalized invoice of ``lines`` whose totals follow the invoice's invariants."""
    subtotal, total = totals(lines, zero(currency))
    return Invoice(
        contract_id="ctr_1",
        customer_id="cus_1",
        currency=currency,
        starting_at=MARCH,
        ending_before=APRIL,
        status=InvoiceStatus.FINALIZED,
        lines=tuple(lines),
        unrated_usage=(),
        subtotal=subtotal,
        total=total,
    )


def in_major(minor: int, currency: str) -> Decimal:
    """``minor`` units of ``currency``'s (ISO 4217) minor unit as an invoice line carries
    them (computed without :func:`from_provider_amount`, which is under test)."""
    return round_money(Decimal(minor) / (10 ** minor_units(currency)), currency)


# --- provider_items: examples ---------------------------------------------------------------


def test_each_non_zero_line_becomes_an_item_in_minor_units() -> None:
    usd = invoice(
        "USD",
        line("12.34", unit_price="0.01", quantity="1234", group=(("model", "gpt"),)),
        line("0.00", LineType.SUBSCRIPTION, "Seats"),
        line("20.00", LineType.SUBSCRIPTION, "Seats", quantity="2", unit_price="10"),
        line("-5.05", LineType.CREDIT_APPLIED, "Promo"),
    )
    assert provider_items(usd) == (
        ProviderItem("0", 1234, "usd", "Tokens (model=gpt): 1234 × 0.01", "usage"),
        ProviderItem("2", 2000, "usd", "Seats: 2 × 10", "subscription"),
        ProviderItem("3", -505, "usd", "Promo", "credit_applied"),
    )
    assert provider_total(usd) == 2729 == sum(item.amount for item in provider_items(usd))


def test_currencies_without_and_with_three_minor_places() -> None:
    jpy = invoice("JPY", line("500"), line("-120", LineType.COMMIT_APPLIED, "Prepaid"))
    assert [(i.key, i.amount, i.currency) for i in provider_items(jpy)] == [
        ("0", 500, "jpy"),
        ("1", -120, "jpy"),
    ]
    assert provider_total(jpy) == 380
    kwd = invoice("KWD", line("1.234"), line("0.001", LineType.SCHEDULED, "Fee"))
    assert [i.amount for i in provider_items(kwd)] == [1234, 1]
    assert provider_total(kwd) == 1235


def test_stripe_counts_icelandic_kronur_in_hundredths() -> None:
    isk = invoice("ISK", line("5"), line("-2", LineType.CREDIT_APPLIED, "Promo"))
    assert [(i.amount, i.currency) for i in provider_items(isk)] == [(500, "isk"), (-200, "isk")]
    assert provider_total(isk) == 300


def test_a_line_with_several_groups_names_each() -> None:
    found = provider_items(invoice("USD", line("1.00", group=(("model", "gpt"), ("region", "eu")))))
    assert found[0].description == "Tokens (model=gpt, region=eu)"


def test_an_invoice_of_zero_lines_or_no_lines_has_no_items() -> None:
    assert provider_items(invoice("USD")) == ()
    assert provider_total(invoice("USD")) == 0
    nothing_owed = invoice("USD", line("0.00"), line("0.00", LineType.CREDIT_APPLIED, "Promo"))
    assert provider_items(nothing_owed) == ()
    assert provider_total(nothing_owed) == 0


def test_a_fully_covered_invoice_has_items_adding_up_to_zero() -> None:
    covered = invoice("USD", line("5.00"), line("-5.00", LineType.CREDIT_APPLIED, "Promo"))
    assert [i.amount for i in provider_items(covered)] == [500, -500]
    assert provider_total(covered) == 0


def test_a_total_floored_at_zero_does_not_add_up_and_is_refused() -> None:
    """Only an invoice whose lines sum below zero (its total floored at 0) can break the
    invariant; such an invoice is never pushed half-right."""
    floored = invoice("USD", line("1.00"), line("-3.00", LineType.CREDIT_APPLIED, "Promo"))
    assert floored.total == D("0.00")
    with pytest.raises(ValidationError, match="do not add up") as error:
        provider_items(floored)
    assert error.value.field == "lines"


def test_a_total_that_disagrees_with_the_lines_is_refused() -> None:
    tampered = replace(invoice("USD", line("1.00")), total=D("2.00"))
    with pytest.raises(ValidationError) as error:
        provider_items(tampered)
    assert error.value.field == "lines"


def test_a_line_not_rounded_to_the_minor_unit_is_refused() -> None:
    with pytest.raises(ValidationError) as error:
        provider_items(invoice("USD", line("1.005")))
    assert error.value.field == "amount"
    with pytest.raises(ValidationError):
        provider_items(invoice("JPY", line("0.5")))
    with pytest.raises(ValidationError):  # Stripe's hundredths are not ours to bill
        provider_items(invoice("ISK", line("0.5")))


# --- provider_items: properties -------------------------------------------------------------


@st.composite
def invoices(draw: st.DrawFn) -> Invoice:
    """Random invoices: charges (some zero) of any charge type, then credits and commits
    applied that together draw at most what was charged, in a random order; every amount
    rounded to the currency's minor unit."""
    currency = draw(st.sampled_from(CURRENCIES))
    charges = draw(st.lists(st.integers(0, 10**9), max_size=8))
    remaining = sum(charges)
    applied = []
    for _ in range(draw(st.integers(0, 4))):
        drawn = draw(st.integers(0, remaining))
        applied.append(drawn)
        remaining -= drawn
    lines = [
        line(in_major(minor, currency), draw(st.sampled_from(CHARGES)), f"Charge {i}")
        for i, minor in enumerate(charges)
    ] + [
        line(in_major(-minor, currency), draw(st.sampled_from(APPLIED)), f"Applied {i}")
        for i, minor in enumerate(applied)
    ]
    return invoice(currency, *draw(st.permutations(lines)))


@settings(max_examples=300, deadline=None)
@given(invoices())
def test_items_add_up_to_the_provider_total(found: Invoice) -> None:
    items = provider_items(found)
    assert sum(item.amount for item in items) == provider_total(found)
    assert from_provider_amount(provider_total(found), found.currency) == found.total
    assert provider_total(found) >= 0


@settings(max_examples=300, deadline=None)
@given(invoices())
def test_items_are_the_non_zero_lines_keyed_by_their_index(found: Invoice) -> None:
    items = provider_items(found)
    non_zero = [(i, ln) for i, ln in enumerate(found.lines) if ln.amount != 0]
    assert [item.key for item in items] == [str(i) for i, _ in non_zero]
    for item, (_, ln) in zip(items, non_zero, strict=True):
        assert item.amount != 0
        assert from_provider_amount(item.amount, found.currency) == ln.amount
        assert (item.currency, item.line_type) == (found.currency.lower(), ln.type.value)
        assert item.description.startswith(ln.name)
    assert len({item.key for item in items}) == len(items)


@settings(max_examples=200, deadline=None)
@given(invoices())
def test_the_same_invoice_gives_the_same_items(found: Invoice) -> None:
    """Deterministic: a retried push (of the invoice read again) makes the same items."""
    rebuilt = invoice(found.currency, *(replace(ln) for ln in found.lines))
    assert provider_items(found) == provider_items(found) == provider_items(rebuilt)


@settings(max_examples=200, deadline=None)
@given(invoices(), st.integers(0, 10**6))
def test_keys_do_not_depend_on_later_lines(found: Invoice, extra: int) -> None:
    """A line's key is its index: lines added after it never rename it."""
    longer = invoice(found.currency, *found.lines, line(in_major(extra, found.currency)))
    before, after = provider_items(found), provider_items(longer)
    assert after[: len(before)] == before
    assert len(after) == len(before) + (1 if extra else 0)


# --- amounts in Stripe's unit -------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("12.34", "USD", 1234),
        ("12.3", "USD", 1230),
        ("12.340", "USD", 1234),
        ("-5.05", "USD", -505),
        ("0", "USD", 0),
        ("500", "JPY", 500),
        ("1E+3", "JPY", 1000),
        ("1.234", "KWD", 1234),
        ("0.001", "KWD", 1),
        ("5", "ISK", 500),
        ("-7", "ISK", -700),
    ],
)
def test_provider_amount_examples(amount: str, currency: str, expected: int) -> None:
    found = provider_amount(D(amount), currency)
    assert found == expected and type(found) is int


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (1234, "USD", "12.34"),
        (-505, "USD", "-5.05"),
        (500, "JPY", "500"),
        (5, "KWD", "0.005"),
        (500, "ISK", "5"),
    ],
)
def test_from_provider_amount_examples(amount: int, currency: str, text: str) -> None:
    assert from_provider_amount(amount, currency) == D(text)


def test_only_isk_differs_from_iso_4217() -> None:
    assert PROVIDER_PLACES == {"ISK": 2}


ISO_LIKE = sorted(set(MINOR_UNITS) - {"ISK"})


@given(st.integers(-(10**15), 10**15), st.sampled_from(ISO_LIKE))
def test_from_provider_amount_is_undone_by_provider_amount(minor: int, currency: str) -> None:
    assert provider_amount(from_provider_amount(minor, currency), currency) == minor


@given(st.integers(-(10**15), 10**15))
def test_whole_kronur_go_to_stripe_in_hundredths_and_back(kronur: int) -> None:
    assert provider_amount(D(kronur), "ISK") == 100 * kronur
    assert provider_amount(from_provider_amount(100 * kronur, "ISK"), "ISK") == 100 * kronur


@given(st.integers(-(10**15), 10**15), st.sampled_from(CURRENCIES))
def test_provider_amount_is_undone_by_from_provider_amount(minor: int, currency: str) -> None:
    amount = in_major(minor, currency)
    assert from_provider_amount(provider_amount(amount, currency), currency) == amount


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        ("0.001", "USD"),
        ("12.345", "USD"),
        ("-0.005", "USD"),
        ("0.5", "JPY"),
        ("499.9", "JPY"),
        ("1.0001", "KWD"),
        ("0.01", "ISK"),
        ("5.5", "ISK"),
    ],
)
def test_provider_amount_refuses_sub_minor_amounts(amount: str, currency: str) -> None:
    with pytest.raises(ValidationError) as error:
        provider_amount(D(amount), currency)
    assert (error.value.field, error.value.code) == ("amount", "VALIDATION")


@given(
    st.integers(-(10**12), 10**12),
    st.integers(1, 9),
    st.sampled_from(CURRENCIES),
)
def test_provider_amount_refuses_any_fraction_of_a_minor_unit(
    minor: int, tenths: int, currency: str
) -> None:
    amount = in_major(minor, currency) + D(tenths).scaleb(-minor_units(currency) - 1)
    with pytest.raises(ValidationError):
        provider_amount(amount, currency)


def test_the_conversions_refuse_an_unknown_currency() -> None:
    for convert in (
        lambda: provider_amount(D("1"), "XXX"),
        lambda: from_provider_amount(1, "XXX"),
    ):
        with pytest.raises(ValidationError) as error:
            convert()
        assert error.value.field == "currency"
