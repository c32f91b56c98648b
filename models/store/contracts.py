"""Contracts: create (validated by the core), load as core values, record every edit."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.contracts import Contract
from billing.errors import NotFoundError
from billing.validation import validate_contract
from models.codec import decode, to_json
from models.contracts import ContractEdit, ContractRow
from models.customers import Customer
from models.ids import new_id
from models.store.catalog import load_rate_card
from models.store.uniqueness import claim_uniqueness_key
from models.tables import table

contracts = table(ContractRow)
edits = table(ContractEdit)
customers = table(Customer)


async def create_contract(
    conn: AsyncConnection,
    org_id: str,
    contract: Contract,
    now: datetime,
    *,
    actor: str,
    uniqueness_key: str | None = None,
) -> Contract:
    """Store a new contract (id assigned here) for a customer and rate card of ``org_id``."""
    stored = replace(contract, id=new_id("ctr"))
    validate_contract(stored)
    customer = await conn.scalar(
        select(func.count()).where(
            (customers.c.id == stored.customer_id)
            & (customers.c.org_id == org_id)
            & customers.c.archived_at.is_(None)
        )
    )
    if not customer:
        raise NotFoundError(f"customer_id: no customer {stored.customer_id!r}")
    await load_rate_card(conn, org_id, stored.rate_card_id)
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


async def customer_contracts(
    conn: AsyncConnection, org_id: str, customer_id: str
) -> list[Contract]:
    """The customer's live contracts, oldest first."""
    query = (
        select(contracts.c.document)
        .where(
            (contracts.c.org_id == org_id)
            & (contracts.c.customer_id == customer_id)
            & contracts.c.archived_at.is_(None)
        )
        .order_by(contracts.c.starting_at, contracts.c.id)
    )
    return [decode(Contract, doc) for doc in (await conn.execute(query)).scalars()]
