"""Offset notification rules and the record of lifecycle occurrences already handled
(SPEC §8): the primary key makes each (rule, object, occurrence) fire once, whatever the
number of schedulers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime


class OffsetRuleRow(SQLModel, table=True):
    __tablename__ = "offset_rules"
    __table_args__ = (Index("ix_offset_rules_org", "org_id", "created_at"),)

    id: str = Field(primary_key=True, max_length=40)
    org_id: str = Field(foreign_key="organizations.id", max_length=40)
    name: str = Field(max_length=200)
    trigger: str = Field(max_length=60)
    offset: str = Field(max_length=60)
    created_at: datetime = Field(sa_type=UTCDateTime)
    archived_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class HandledOccurrence(SQLModel, table=True):
    """``key``: ``"<rule id or 'system'>|<type>|<object id>|<instant>"``."""

    __tablename__ = "lifecycle_handled"

    org_id: str = Field(primary_key=True, max_length=40)
    key: str = Field(primary_key=True, max_length=300)
    contract_id: str = Field(max_length=40, index=True)
    handled_at: datetime = Field(sa_type=UTCDateTime)
