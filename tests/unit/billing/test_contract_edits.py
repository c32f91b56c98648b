"""Contract edits (SPEC §5): add terms, archive terms by id, move the end date; and the
products a contract's terms refer to."""

from __future__ import annotations

from dataclasses import replace

import pytest

from billing.catalog import Product, ProductType
from billing.contract_edits import (
    ContractEdit,
    apply_edit,
    referenced_products,
    validate_references,
)
from billing.contracts import (
    Commit,
    CommitType,
    Contract,
    Credit,
    Override,
    OverrideType,
    QuantityChange,
    RecurringCredit,
    ScheduledCharge,
    Subscription,
)
from billing.errors import ValidationError
from billing.periods import BillingFrequency
from tests.unit.billing.builders import APRIL, MARCH, D, at, contract

MAY = at(2026, 5, 1)


def override(term_id: str, product_id: str = "tokens") -> Override:
    return Override(product_id, MARCH, OverrideType.MULTIPLIER, multiplier=D("0.5"), id=term_id)


def credit(term_id: str, amount: str = "5", **kwargs: object) -> Credit:
    return Credit(term_id, term_id.upper(), D(amount), MARCH, MAY, **kwargs)  # type: ignore[arg-type]


def recurring(term_id: str, **kwargs: object) -> RecurringCredit:
    return RecurringCredit(
        term_id,
        "Monthly",
        D(9),
        BillingFrequency.MONTHLY,
        MARCH,
        **kwargs,  # type: ignore[arg-type]
    )


def commit(term_id: str, product_id: str = "fee", **kwargs: object) -> Commit:
    return Commit(
        term_id,
        "Prepaid",
        product_id,
        CommitType.PREPAID,
        D(100),
        MARCH,
        MAY,
        **kwargs,  # type: ignore[arg-type]
    )


def subscription(term_id: str, product_id: str = "seats") -> Subscription:
    return Subscription(product_id, (QuantityChange(MARCH, D(2)),), id=term_id)


def charge(term_id: str, product_id: str = "fee") -> ScheduledCharge:
    return ScheduledCharge(term_id, product_id, APRIL, D(50), "Onboarding")


def full_contract() -> Contract:
    return contract(
        overrides=(override("ovr_1"),),
        credits=(credit("cred_1"), credit("cred_2")),
        recurring_credits=(recurring("rcred_1"),),
        commits=(commit("cmt_1"),),
        subscriptions=(subscription("sub_1"),),
        scheduled_charges=(charge("chg_1"),),
    )


def test_an_edit_with_nothing_in_it_is_empty() -> None:
    assert ContractEdit().is_empty
    assert not ContractEdit(archive_term_ids=("x",)).is_empty
    assert not ContractEdit(add_credits=(credit("c"),)).is_empty
    # moving the end to "open-ended" is a change even though ending_before is None
    assert not ContractEdit(update_end_date=True).is_empty


def test_an_empty_edit_is_refused() -> None:
    with pytest.raises(ValidationError) as error:
        apply_edit(full_contract(), ContractEdit())
    assert error.value.field == "contract_id"


def test_added_terms_follow_the_existing_ones() -> None:
    before = full_contract()
    edit = ContractEdit(
        add_overrides=(override("ovr_2"),),
        add_credits=(credit("cred_3"),),
        add_recurring_credits=(recurring("rcred_2"),),
        add_commits=(commit("cmt_2"),),
        add_subscriptions=(subscription("sub_2"),),
        add_scheduled_charges=(charge("chg_2"),),
    )
    after = apply_edit(before, edit)
    assert [o.id for o in after.overrides] == ["ovr_1", "ovr_2"]
    assert [c.id for c in after.credits] == ["cred_1", "cred_2", "cred_3"]
    assert [r.id for r in after.recurring_credits] == ["rcred_1", "rcred_2"]
    assert [c.id for c in after.commits] == ["cmt_1", "cmt_2"]
    assert [s.id for s in after.subscriptions] == ["sub_1", "sub_2"]
    assert [c.id for c in after.scheduled_charges] == ["chg_1", "chg_2"]
    # everything else is kept, and the original contract is unchanged
    assert (after.id, after.starting_at, after.ending_before) == (before.id, MARCH, None)
    assert before == full_contract()


def test_archived_terms_are_removed_from_every_kind() -> None:
    edit = ContractEdit(
        archive_term_ids=("ovr_1", "cred_2", "rcred_1", "cmt_1", "sub_1", "chg_1"),
    )
    after = apply_edit(full_contract(), edit)
    assert [c.id for c in after.credits] == ["cred_1"]
    assert (after.overrides, after.recurring_credits, after.commits) == ((), (), ())
    assert (after.subscriptions, after.scheduled_charges) == ((), ())


def test_a_term_can_be_replaced_in_one_edit() -> None:
    edit = ContractEdit(add_credits=(credit("cred_9", "7"),), archive_term_ids=("cred_1",))
    after = apply_edit(full_contract(), edit)
    assert [(c.id, c.amount) for c in after.credits] == [("cred_2", D(5)), ("cred_9", D(7))]


@pytest.mark.parametrize(
    ("ids", "field"),
    [
        (("nope",), "archive_term_ids[0]"),
        (("cred_1", "cred_1x"), "archive_term_ids[1]"),
        (("cred_1", "sub_1", "ctr"), "archive_term_ids[2]"),
    ],
)
def test_archiving_an_unknown_term_names_its_index(ids: tuple[str, ...], field: str) -> None:
    with pytest.raises(ValidationError) as error:
        apply_edit(full_contract(), ContractEdit(archive_term_ids=ids))
    assert error.value.field == field


def test_archiving_a_term_added_in_the_same_edit_is_refused() -> None:
    edit = ContractEdit(add_credits=(credit("cred_3"),), archive_term_ids=("cred_3",))
    with pytest.raises(ValidationError) as error:
        apply_edit(full_contract(), edit)
    assert error.value.field == "archive_term_ids[0]"


def test_the_end_date_moves_only_when_asked() -> None:
    dated = replace(full_contract(), ending_before=at(2027, 1, 1))
    moved = apply_edit(dated, ContractEdit(update_end_date=True, ending_before=MAY))
    assert moved.ending_before == MAY
    opened = apply_edit(dated, ContractEdit(update_end_date=True))
    assert opened.ending_before is None
    # ``ending_before`` without ``update_end_date`` leaves the end alone
    kept = apply_edit(dated, ContractEdit(ending_before=MAY, archive_term_ids=("chg_1",)))
    assert kept.ending_before == at(2027, 1, 1)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (ContractEdit(update_end_date=True, ending_before=MARCH), "ending_before"),
        (ContractEdit(update_end_date=True, ending_before=at(2026, 2, 1)), "ending_before"),
        (ContractEdit(add_credits=(credit("cred_3", "0"),)), "credits[2].amount"),
        (
            ContractEdit(add_commits=(replace(commit("cmt_2"), ending_before=MARCH),)),
            "commits[1].ending_before",
        ),
        (
            ContractEdit(
                add_overrides=(Override("tokens", MARCH, OverrideType.OVERWRITE, id="ovr_2"),)
            ),
            "overrides[1].overwrite_rate",
        ),
        (
            ContractEdit(add_subscriptions=(Subscription("seats", (), id="sub_2"),)),
            "subscriptions[1].quantity_schedule",
        ),
    ],
)
def test_an_edit_giving_an_invalid_contract_names_the_field(edit: ContractEdit, field: str) -> None:
    with pytest.raises(ValidationError) as error:
        apply_edit(full_contract(), edit)
    assert error.value.field == field


def test_referenced_products_lists_every_product_with_its_field() -> None:
    terms = contract(
        overrides=(override("o1", "tokens"), override("o2", "storage")),
        credits=(
            credit("c1"),  # every product: names none
            credit("c2", applicable_product_ids=frozenset({"tokens", "storage"})),
        ),
        recurring_credits=(recurring("r1", applicable_product_ids=frozenset({"seats"})),),
        commits=(commit("m1", "fee", applicable_product_ids=frozenset({"tokens"})),),
        subscriptions=(subscription("s1", "seats"),),
        scheduled_charges=(charge("h1", "setup"), charge("h2", "fee")),
    )
    assert referenced_products(terms) == [
        ("overrides[0].product_id", "tokens", None),
        ("overrides[1].product_id", "storage", None),
        ("credits[1].applicable_product_ids", "storage", None),
        ("credits[1].applicable_product_ids", "tokens", None),
        ("recurring_credits[0].applicable_product_ids", "seats", None),
        ("commits[0].applicable_product_ids", "tokens", None),
        ("commits[0].product_id", "fee", ProductType.FIXED),
        ("subscriptions[0].product_id", "seats", ProductType.SUBSCRIPTION),
        ("scheduled_charges[0].product_id", "setup", ProductType.FIXED),
        ("scheduled_charges[1].product_id", "fee", ProductType.FIXED),
    ]


def test_a_contract_without_terms_references_no_product() -> None:
    assert referenced_products(contract()) == []


def test_references_must_exist_and_have_the_right_type() -> None:
    products = {
        "fee": Product("fee", "Fee", ProductType.FIXED),
        "seats": Product("seats", "Seats", ProductType.SUBSCRIPTION),
    }
    validate_references(contract(commits=(commit("m1", "fee"),)), products)
    with pytest.raises(ValidationError) as unknown:
        validate_references(contract(subscriptions=(subscription("s1", "nope"),)), products)
    assert unknown.value.field == "subscriptions[0].product_id"
    with pytest.raises(ValidationError) as wrong:
        validate_references(contract(commits=(commit("m1", "seats"),)), products)
    assert wrong.value.field == "commits[0].product_id"
