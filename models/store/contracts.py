"""Contracts: create (validated by the core), edit, archive, load as core values, and
every change recorded in the contract's edit history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.contract_edits import ContractEdit as Edit
from billing.contract_edits import apply_edit, validate_references
from billing.contracts import TERM_PREFIXES, Contract
from billing.errors import NotFoundError
from billing.validation import validate_contract
from models.codec import decode, to_json
from models.contracts import ContractEdit, ContractRow
from models.customers import Customer
from models.ids import new_id
from models.store import dialect
from models.store.catalog import list_products, rate_card_currency
from models.store.customers import check_customer
from models.store.pages import page
from models.store.uniqueness import claim_uniqueness_key
from models.tables import table

contracts = table(ContractRow)
edits = table(ContractEdit)
customers = table(Customer)


@dataclass(frozen=True)
class ContractRecord:
    contract: Contract
    created_at: datetime
    archived_at: datetime | None


@dataclass(frozen=True)
class EditRecord:
    version: int
    kind: str
    changes: dict[str, Any]
    actor: str
    created_at: datetime


def with_term_ids(contract: Contract) -> Contract:
    """The contract with an id on every term that has none."""
    named: dict[str, Any] = {
        name: tuple(t if t.id else replace(t, id=new_id(prefix)) for t in getattr(contract, name))
        for name, prefix in TERM_PREFIXES.items()
    }
    return replace(contract, **named)


async def _check_references(conn: AsyncConnection, org_id: str, contract: Contract) -> None:
    await check_customer(conn, org_id, contract.customer_id)
    await rate_card_currency(conn, org_id, contract.rate_card_id)
    await check_products(conn, org_id, contract)


async def check_products(conn: AsyncConnection, org_id: str, contract: Contract) -> None:
    """VALIDATION naming the term field whose product is unknown or of the wrong type."""
    validate_references(contract, {p.id: p for p in await list_products(conn, org_id)})


async def create_contract(
    conn: AsyncConnection,
    org_id: str,
    contract: Contract,
    now: datetime,
    *,
    actor: str,
    uniqueness_key: str | None = None,
) -> Contract:
    """Store a new contract (its id and its terms' ids assigned here) for a customer and
    rate card of ``org_id``."""
    stored = with_term_ids(replace(contract, id=contract.id or new_id("ctr")))
    validate_contract(stored)
    await _check_references(conn, org_id, stored)
    await claim_uniqueness_key(conn, org_id, "contract", uniqueness_key, stored.id)
    document = to_json(stored)
    await conn.execute(
        contracts.insert().values(
            id=stored.id,
            org_id=org_id,
            customer_id=stored.customer_id,
            rate_card_id=stored.rate_card_id,
            starting_at=stored.starting_at,
            ending_before=stored.ending_before,
            document=document,
            created_at=now,
        )
    )
    await _record_edit(conn, org_id, stored.id, 1, "create", document, actor, now)
    return stored


async def _live_row(conn: AsyncConnection, org_id: str, contract_id: str) -> Any:
    row = (
        await conn.execute(
            select(contracts).where(
                (contracts.c.id == contract_id)
                & (contracts.c.org_id == org_id)
                & contracts.c.archived_at.is_(None)
            )
        )
    ).first()
    if row is None:
        raise NotFoundError(f"no live contract {contract_id!r}", "contract_id")
    return row


async def edit_contract(
    conn: AsyncConnection, org_id: str, contract_id: str, edit: Edit, now: datetime, *, actor: str
) -> Contract:
    """Apply ``edit`` to a live contract of ``org_id`` and record it (a new version)."""
    row = await _live_row(conn, org_id, contract_id)
    edited = with_term_ids(apply_edit(decode(Contract, row.document), edit))
    await _check_references(conn, org_id, edited)
    await conn.execute(
        update(contracts)
        .where(contracts.c.id == contract_id)
        .values(
            document=to_json(edited),
            ending_before=edited.ending_before,
            version=row.version + 1,
        )
    )
    await _record_edit(
        conn, org_id, contract_id, row.version + 1, "edit", to_json(edit), actor, now
    )
    return edited


async def archive_contract(
    conn: AsyncConnection, org_id: str, contract_id: str, now: datetime, *, actor: str
) -> ContractRecord:
    """Archive a live contract: it has no drafts any more; finalized invoices remain."""
    row = await _live_row(conn, org_id, contract_id)
    await conn.execute(
        update(contracts)
        .where(contracts.c.id == contract_id)
        .values(archived_at=now, version=row.version + 1)
    )
    changes = {"archived_at": now.isoformat()}
    await _record_edit(conn, org_id, contract_id, row.version + 1, "archive", changes, actor, now)
    return ContractRecord(decode(Contract, row.document), row.created_at, now)


async def _record_edit(
    conn: AsyncConnection,
    org_id: str,
    contract_id: str,
    version: int,
    kind: str,
    changes: dict[str, Any],
    actor: str,
    now: datetime,
) -> None:
    await conn.execute(
        edits.insert().values(
            id=new_id("edit"),
            org_id=org_id,
            contract_id=contract_id,
            version=version,
            kind=kind,
            changes=changes,
            actor=actor,
            created_at=now,
        )
    )


def _record(row: Any) -> ContractRecord:
    return ContractRecord(decode(Contract, row.document), row.created_at, row.archived_at)


async def contracts_by_id(
    conn: AsyncConnection, org_id: str, contract_ids: Sequence[str]
) -> dict[str, ContractRecord]:
    """The organization's contracts (archived included) among ``contract_ids``."""
    if not contract_ids:
        return {}
    query = select(contracts).where(
        (contracts.c.org_id == org_id) & contracts.c.id.in_(sorted(set(contract_ids)))
    )
    return {row.id: _record(row) for row in await conn.execute(query)}


async def contracts_page(
    conn: AsyncConnection,
    org_id: str,
    first: int,
    after: str | None,
    *,
    customer_id: str | None = None,
    include_archived: bool = False,
) -> tuple[list[tuple[str, ContractRecord]], bool]:
    query = select(contracts).where(contracts.c.org_id == org_id)
    if customer_id is not None:
        query = query.where(contracts.c.customer_id == customer_id)
    if not include_archived:
        query = query.where(contracts.c.archived_at.is_(None))
    found = await page(conn, query, contracts.c.created_at, contracts.c.id, first, after)
    return [(cursor, _record(row)) for cursor, row in found.rows], found.has_next


async def contracts_of_customers(
    conn: AsyncConnection, org_id: str, customer_ids: Sequence[str]
) -> dict[str, list[Contract]]:
    """Per customer id, its live contracts, oldest first (one query)."""
    result: dict[str, list[Contract]] = {c: [] for c in customer_ids}
    if not customer_ids:
        return result
    query = (
        select(contracts.c.customer_id, contracts.c.document)
        .where(
            (contracts.c.org_id == org_id)
            & contracts.c.customer_id.in_(sorted(set(customer_ids)))
            & contracts.c.archived_at.is_(None)
        )
        .order_by(contracts.c.starting_at, contracts.c.id)
    )
    for customer_id, document in await conn.execute(query):
        result[customer_id].append(decode(Contract, document))
    return result


async def edits_of(
    conn: AsyncConnection, org_id: str, contract_ids: Sequence[str]
) -> dict[str, list[EditRecord]]:
    """Per contract id, its edit history, oldest first (one query)."""
    result: dict[str, list[EditRecord]] = {c: [] for c in contract_ids}
    if not contract_ids:
        return result
    query = (
        select(edits)
        .where((edits.c.org_id == org_id) & edits.c.contract_id.in_(sorted(set(contract_ids))))
        .order_by(edits.c.version)
    )
    for row in await conn.execute(query):
        result[row.contract_id].append(
            EditRecord(row.version, row.kind, row.changes, row.actor, row.created_at)
        )
    return result


async def live_contracts_everywhere(conn: AsyncConnection) -> list[tuple[str, ContractRecord]]:
    """(organization id, record) of every live contract of every organization: what the
    scheduler and the finalizer walk."""
    query = select(contracts).where(contracts.c.archived_at.is_(None))
    rows = await conn.execute(query.order_by(contracts.c.org_id, contracts.c.id))
    return [(row.org_id, _record(row)) for row in rows]


async def lock_contract(conn: AsyncConnection, contract_id: str) -> None:
    """Hold the contract's row until commit (PostgreSQL; SQLite has one writer): what
    finalizes its periods and what counts its late events take turns."""
    if not dialect.is_sqlite(conn):
        query = select(contracts.c.id).where(contracts.c.id == contract_id).with_for_update()
        await conn.execute(query)
