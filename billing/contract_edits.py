"""Contract edits (SPEC §5): add terms, archive terms, move the end date.

An edit is applied to the contract's current terms and gives new terms; drafts re-rate
from them at once, while finalized invoices (stored documents) never change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from billing.catalog import Product, ProductType
from billing.contracts import (
    TERM_PREFIXES,
    BillingProvider,
    Commit,
    Contract,
    Credit,
    Override,
    RecurringCredit,
    ScheduledCharge,
    Subscription,
)
from billing.errors import ValidationError
from billing.validation import validate_contract

Term = TypeVar("Term", Override, Credit, RecurringCredit, Commit, Subscription, ScheduledCharge)


@dataclass(frozen=True)
class ContractEdit:
    """Terms to add (with their ids already assigned), ids of terms to archive, the new
    end date when ``update_end_date`` is set (``ending_before`` None = open-ended), and a
    new billing provider when ``billing_provider`` is set."""

    add_overrides: tuple[Override, ...] = ()
    add_credits: tuple[Credit, ...] = ()
    add_recurring_credits: tuple[RecurringCredit, ...] = ()
    add_commits: tuple[Commit, ...] = ()
    add_subscriptions: tuple[Subscription, ...] = ()
    add_scheduled_charges: tuple[ScheduledCharge, ...] = ()
    archive_term_ids: tuple[str, ...] = ()
    update_end_date: bool = False
    ending_before: datetime | None = None
    billing_provider: BillingProvider | None = None

    @property
    def is_empty(self) -> bool:
        """True when the edit changes nothing."""
        return self == ContractEdit()


def apply_edit(contract: Contract, edit: ContractEdit) -> Contract:
    """The contract with ``edit`` applied, validated like a new contract.

    Raises ``ValidationError`` naming the field: an empty edit, an archived id that is not
    one of the contract's terms, or terms that make the contract invalid."""
    if edit.is_empty:
        raise ValidationError("contract_id", "the edit changes nothing")
    term_ids = {term.id for name in TERM_PREFIXES for term in getattr(contract, name)}
    gone = set(edit.archive_term_ids)
    for index, term_id in enumerate(edit.archive_term_ids):
        if term_id not in term_ids:
            raise ValidationError(
                f"archive_term_ids[{index}]", f"no term {term_id!r} on this contract"
            )

    edited = replace(
        contract,
        **{
            name: tuple(t for t in getattr(contract, name) if t.id not in gone)
            + getattr(edit, f"add_{name}")
            for name in TERM_PREFIXES
        },
        ending_before=edit.ending_before if edit.update_end_date else contract.ending_before,
        billing_provider=edit.billing_provider or contract.billing_provider,
    )
    validate_contract(edited)
    return edited


def referenced_products(contract: Contract) -> list[tuple[str, str, ProductType | None]]:
    """Every ``(field, product id, required product type)`` the contract's terms name:
    commits and scheduled charges name fixed products, subscriptions subscription
    products; overrides and applicable products may name any type (None)."""
    found: list[tuple[str, str, ProductType | None]] = []
    for i, o in enumerate(contract.overrides):
        found.append((f"overrides[{i}].product_id", o.product_id, None))
    grants: list[tuple[str, Credit | RecurringCredit | Commit]] = [
        *((f"credits[{i}]", c) for i, c in enumerate(contract.credits)),
        *((f"recurring_credits[{i}]", r) for i, r in enumerate(contract.recurring_credits)),
        *((f"commits[{i}]", c) for i, c in enumerate(contract.commits)),
    ]
    for field, grant in grants:
        for product_id in sorted(grant.applicable_product_ids or ()):
            found.append((f"{field}.applicable_product_ids", product_id, None))
    for i, c in enumerate(contract.commits):
        found.append((f"commits[{i}].product_id", c.product_id, ProductType.FIXED))
    for i, s in enumerate(contract.subscriptions):
        found.append((f"subscriptions[{i}].product_id", s.product_id, ProductType.SUBSCRIPTION))
    for i, charge in enumerate(contract.scheduled_charges):
        found.append((f"scheduled_charges[{i}].product_id", charge.product_id, ProductType.FIXED))
    return found


def validate_references(contract: Contract, products: Mapping[str, Product]) -> None:
    """Raise ``ValidationError`` naming the first term field whose product is unknown or
    of the wrong type (see :func:`referenced_products`)."""
    for field, product_id, required in referenced_products(contract):
        product = products.get(product_id)
        if product is None:
            raise ValidationError(field, f"no product {product_id!r}")
        if required is not None and product.type is not required:
            raise ValidationError(
                field,
                f"must name a {required.value} product, {product_id!r} is {product.type.value}",
            )
