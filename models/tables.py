"""Every table, imported once so ``SQLModel.metadata`` is complete (Alembic reads it)."""

from sqlalchemy import Table
from sqlmodel import SQLModel

from models.alerts import AlertEvaluationRow, AlertRow, AlertStateRow
from models.audit import AuditEntry
from models.billing_providers import InvoiceSyncRow, StripeEventRow, StripeSettingsRow
from models.catalog import ProductRow, RateCardRow, RateRow, UniquenessKey
from models.contracts import ContractEdit, ContractRow
from models.customers import Customer, CustomerIngestKey
from models.invoices import InvoiceRow, LedgerEntryRow
from models.lifecycle import HandledOccurrence, OffsetRuleRow
from models.metrics import BillableMetric
from models.organizations import ApiKey, CustomerToken, Organization
from models.packages import PackageRow
from models.usage import EventDedupe, UsageDistinct, UsageEventRow, UsageRollup
from models.webhooks import (
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
    WebhookMessageRow,
)

metadata = SQLModel.metadata


def table(model: type[SQLModel]) -> Table:
    """The Core table of a SQLModel class (the store writes Core SQL against it)."""
    found: Table = model.__table__  # type: ignore[attr-defined]
    return found


__all__ = [
    "AlertEvaluationRow",
    "AlertRow",
    "AlertStateRow",
    "ApiKey",
    "AuditEntry",
    "BillableMetric",
    "ContractEdit",
    "ContractRow",
    "Customer",
    "CustomerIngestKey",
    "CustomerToken",
    "EventDedupe",
    "HandledOccurrence",
    "InvoiceRow",
    "InvoiceSyncRow",
    "LedgerEntryRow",
    "OffsetRuleRow",
    "Organization",
    "PackageRow",
    "ProductRow",
    "RateCardRow",
    "RateRow",
    "StripeEventRow",
    "StripeSettingsRow",
    "UniquenessKey",
    "UsageDistinct",
    "UsageEventRow",
    "UsageRollup",
    "WebhookAttemptRow",
    "WebhookDeliveryRow",
    "WebhookEndpointRow",
    "WebhookMessageRow",
    "metadata",
    "table",
]
