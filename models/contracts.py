"""Contracts (SPEC §5): the terms as one document, and every edit in the history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime


class ContractRow(SQLModel, table=True):
    __tablename__ = "contracts"
    __table_args__ = (Index("ix_contracts_customer", "org_id", "customer_id"),)

    id: str = Field(primary_key=True, max_length=40)
    org_id: str = Field(foreign_key="organizations.id", max_length=40)
    customer_id: str = Field(foreign_key="customers.id", max_length=40)
    rate_card_id: str = Field(foreign_key="rate_cards.id", max_length=40)
    name: str = Field(default="", max_length=200)
    starting_at: datetime = Field(sa_type=UTCDateTime)
    ending_before: datetime | None = Field(default=None, sa_type=UTCDateTime)
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    version: int = Field(default=1)
    created_at: datetime = Field(sa_type=UTCDateTime)
    archived_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ContractEdit(SQLModel, table=True):
    __tablename__ = "contract_edits"
    __table_args__ = (Index("ix_contract_edits_contract", "contract_id", "version"),)

    id: str = Field(primary_key=True, max_length=40)
    org_id: str = Field(foreign_key="organizations.id", max_length=40)
    contract_id: str = Field(foreign_key="contracts.id", max_length=40)
    version: int
    kind: str = Field(max_length=40)
    changes: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    actor: str = Field(max_length=80)
    created_at: datetime = Field(sa_type=UTCDateTime)
