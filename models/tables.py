"""Every table, imported once so ``SQLModel.metadata`` is complete (Alembic reads it)."""

from sqlalchemy import Table
from sqlmodel import SQLModel

from models.audit import AuditEntry
from models.catalog import ProductRow, RateCardRow, RateRow, UniquenessKey
from models.contracts import ContractEdit, ContractRow
from models.customers import Customer, CustomerIngestKey
from models.metrics import BillableMetric
from models.organizations import ApiKey, Organization
from models.usage import EventDedupe, UsageDistinct, UsageEventRow, UsageRollup

metadata = SQLModel.metadata


def table(model: type[SQLModel]) -> Table:
    """The Core table of a SQLModel class (the store writes Core SQL against it)."""
    found: Table = model.__table__  # type: ignore[attr-defined]
    return found


__all__ = [
    "ApiKey",
    "AuditEntry",
    "BillableMetric",
    "ContractEdit",
    "ContractRow",
    "Customer",
    "CustomerIngestKey",
    "EventDedupe",
    "Organization",
    "ProductRow",
    "RateCardRow",
    "RateRow",
    "UniquenessKey",
    "UsageDistinct",
    "UsageEventRow",
    "UsageRollup",
    "metadata",
    "table",
]
