"""The audit log: every mutation, who made it, on what, with which changes (SPEC §9)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_org", "org_id", "created_at"),)

    id: str = Field(primary_key=True, max_length=40)
    org_id: str = Field(foreign_key="organizations.id", max_length=40)
    actor: str = Field(max_length=80)
    action: str = Field(max_length=80)
    object_kind: str = Field(max_length=40)
    object_id: str = Field(max_length=40)
    changes: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_type=UTCDateTime)
