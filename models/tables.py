"""Every table, imported once so ``SQLModel.metadata`` is complete (Alembic reads it)."""

from sqlmodel import SQLModel

from models.customers import Customer, CustomerIngestKey
from models.metrics import BillableMetric
from models.organizations import ApiKey, Organization
from models.usage import EventDedupe, UsageDistinct, UsageEventRow, UsageRollup

metadata = SQLModel.metadata

__all__ = [
    "ApiKey",
    "BillableMetric",
    "Customer",
    "CustomerIngestKey",
    "EventDedupe",
    "Organization",
    "UsageDistinct",
    "UsageEventRow",
    "UsageRollup",
    "metadata",
]
