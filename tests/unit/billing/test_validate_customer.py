"""Customer validation (SPEC §5): name, ingest aliases and the Stripe collection method;
every error names the offending field."""

from __future__ import annotations

import pytest

from billing.errors import ValidationError
from billing.validation import COLLECTION_METHODS, validate_customer


@pytest.mark.parametrize(
    ("name", "aliases", "method"),
    [
        ("Acme", [], None),
        ("a", ["x"], "charge_automatically"),
        ("x" * 200, ["y" * 128, "z"], "send_invoice"),
        ("  Acme  ", [], None),  # surrounding spaces do not count
        (" " * 10 + "x" * 200, [], None),
        (None, [], None),  # an update that leaves the name alone
        (None, ["alias"], "send_invoice"),
    ],
)
def test_valid_customers_pass(name: str | None, aliases: list[str], method: str | None) -> None:
    validate_customer(name, aliases, method)


def test_the_collection_methods_are_stripes() -> None:
    assert COLLECTION_METHODS == ("charge_automatically", "send_invoice")


@pytest.mark.parametrize(
    ("name", "aliases", "method", "field"),
    [
        ("", [], None, "name"),
        ("   ", [], None, "name"),
        ("x" * 201, [], None, "name"),
        ("Acme", [""], None, "ingest_aliases[0]"),
        ("Acme", ["ok", "y" * 129], None, "ingest_aliases[1]"),
        (None, ["ok", "fine", ""], None, "ingest_aliases[2]"),
        ("Acme", [], "wire", "stripe_collection_method"),
        ("Acme", [], "", "stripe_collection_method"),
        ("Acme", [], "CHARGE_AUTOMATICALLY", "stripe_collection_method"),
        # the first invalid field is named
        ("", [""], "wire", "name"),
        ("Acme", [""], "wire", "ingest_aliases[0]"),
    ],
)
def test_invalid_customers_name_the_field(
    name: str | None, aliases: list[str], method: str | None, field: str
) -> None:
    with pytest.raises(ValidationError) as error:
        validate_customer(name, aliases, method)
    assert error.value.field == field
    assert error.value.code == "VALIDATION"
