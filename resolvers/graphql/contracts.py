"""Contracts (create, from a package, edit, archive, edit history) and packages."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import strawberry
from strawberry.types import Info

from billing.contract_edits import ContractEdit as CoreEdit
from billing.contracts import TERM_PREFIXES
from billing.contracts import Contract as CoreContract
from billing.packages import Package as CorePackage
from models.codec import to_json
from models.store import contracts as store
from models.store import packages as package_store
from models.store.packages import PackageRecord
from notifications.catalog import EventType, contract_changed
from resolvers.graphql.context import Context, mutation, not_found, read, require
from resolvers.graphql.convert import connection, core_of, plain
from resolvers.graphql.loaders import contract_view
from schema.contracts import (
    Contract,
    CreateContractFromPackageInput,
    CreateContractInput,
    CreatePackageInput,
    EditContractInput,
    Package,
)
from schema.pagination import DEFAULT_PAGE, Connection
from schema.views import view


def _blank_ids(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Give every term an empty id (the store assigns real ones)."""
    for name in TERM_PREFIXES:
        data[prefix + name] = [{**term, "id": ""} for term in data.get(prefix + name, [])]
    return data


def package_view(record: PackageRecord) -> Package:
    return view(Package, record.package, record)


async def contracts(
    info: Info[Context, Any],
    first: int = DEFAULT_PAGE,
    after: str | None = None,
    customer_id: strawberry.ID | None = None,
    include_archived: bool = False,
) -> Connection[Contract]:
    principal = require(info, "read")
    async with read(info) as conn:
        found = await store.contracts_page(
            conn,
            principal.org_id,
            first,
            after,
            customer_id=None if customer_id is None else str(customer_id),
            include_archived=include_archived,
        )
    return connection(found, contract_view)


async def contract(info: Info[Context, Any], id: strawberry.ID) -> Contract:
    principal = require(info, "read")
    async with read(info) as conn:
        found = await store.contracts_by_id(conn, principal.org_id, [str(id)])
    if str(id) not in found:
        raise not_found("contract", id)
    return contract_view(found[str(id)])


async def create_contract(info: Info[Context, Any], input: CreateContractInput) -> Contract:
    principal = require(info, "admin")
    terms = core_of(CoreContract, _blank_ids({**plain(input), "id": ""}))
    async with mutation(info, principal) as (conn, audit):
        stored = await store.create_contract(
            conn,
            principal.org_id,
            terms,
            info.context.services.clock(),
            actor=principal.key_id,
            uniqueness_key=input.uniqueness_key,
        )
        await audit("contract", stored.id, to_json(stored))
        await audit.notify(contract_changed(EventType.CONTRACT_CREATED, stored))
        await audit.changed(stored.customer_id)
    return view(Contract, stored, archived_at=None)


async def create_contract_from_package(
    info: Info[Context, Any], input: CreateContractFromPackageInput
) -> Contract:
    principal = require(info, "admin")
    async with mutation(info, principal) as (conn, audit):
        terms = await package_store.package_contract(
            conn, principal.org_id, str(input.package_id), str(input.customer_id), input.starting_at
        )
        terms = replace(terms, billing_provider=input.billing_provider)
        stored = await store.create_contract(
            conn,
            principal.org_id,
            terms,
            info.context.services.clock(),
            actor=principal.key_id,
            uniqueness_key=input.uniqueness_key,
        )
        await audit("contract", stored.id, {"package_id": input.package_id, **to_json(stored)})
        await audit.notify(contract_changed(EventType.CONTRACT_CREATED, stored))
        await audit.changed(stored.customer_id)
    return view(Contract, stored, archived_at=None)


async def edit_contract(info: Info[Context, Any], input: EditContractInput) -> Contract:
    principal = require(info, "admin")
    data = _blank_ids(plain(input), "add_")
    contract_id = str(data.pop("contract_id"))
    end = data.pop("update_end_date", None)
    if input.update_end_date is not None:
        data.update(update_end_date=True, ending_before=end.get("ending_before") if end else None)
    edit = core_of(CoreEdit, data)
    async with mutation(info, principal) as (conn, audit):
        edited = await store.edit_contract(
            conn,
            principal.org_id,
            contract_id,
            edit,
            info.context.services.clock(),
            actor=principal.key_id,
        )
        await audit("contract", contract_id, to_json(edit))
        await audit.notify(contract_changed(EventType.CONTRACT_EDITED, edited))
        await audit.changed(edited.customer_id)
    return view(Contract, edited, archived_at=None)


async def archive_contract(info: Info[Context, Any], id: strawberry.ID) -> Contract:
    principal = require(info, "admin")
    now = info.context.services.clock()
    async with mutation(info, principal) as (conn, audit):
        record = await store.archive_contract(
            conn, principal.org_id, str(id), now, actor=principal.key_id
        )
        await audit("contract", str(id), {"archived_at": now.isoformat()})
        await audit.notify(contract_changed(EventType.CONTRACT_ARCHIVED, record.contract))
        await audit.changed(record.contract.customer_id)
    return contract_view(record)


async def packages(
    info: Info[Context, Any], first: int = DEFAULT_PAGE, after: str | None = None
) -> Connection[Package]:
    principal = require(info, "read")
    async with read(info) as conn:
        found = await package_store.packages_page(conn, principal.org_id, first, after)
    return connection(found, package_view)


async def create_package(info: Info[Context, Any], input: CreatePackageInput) -> Package:
    principal = require(info, "admin")
    package = core_of(CorePackage, {**plain(input), "id": ""})
    async with mutation(info, principal) as (conn, audit):
        stored = await package_store.create_package(
            conn, principal.org_id, package, info.context.services.clock(), input.uniqueness_key
        )
        await audit("package", stored.id, to_json(stored))
    return view(Package, stored, archived_at=None)
