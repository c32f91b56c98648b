"""The billing core's enums, registered as GraphQL enums (one definition of each)."""

from __future__ import annotations

import strawberry

from billing.alerts import AlertState, AlertType
from billing.catalog import ConversionOperation, ProductType, RateType, RoundingMethod, TierMode
from billing.contracts import BillingProvider, CommitType, OverrideType
from billing.drawdown import BalanceKind, LedgerEntryType
from billing.invoices import InvoiceStatus, LineType
from billing.metering import AggregationType
from billing.periods import BillingAnchor, BillingFrequency
from billing.preview import PreviewMode
from billing.provider_invoice import PaymentStatus, SyncStatus
from billing.rates import UnratedReason

for _enum in (
    AggregationType,
    AlertState,
    AlertType,
    BalanceKind,
    BillingAnchor,
    BillingFrequency,
    BillingProvider,
    CommitType,
    ConversionOperation,
    InvoiceStatus,
    LedgerEntryType,
    LineType,
    OverrideType,
    PaymentStatus,
    PreviewMode,
    ProductType,
    RateType,
    RoundingMethod,
    SyncStatus,
    TierMode,
    UnratedReason,
):
    strawberry.enum(_enum)

__all__ = [
    "AggregationType",
    "AlertState",
    "AlertType",
    "BalanceKind",
    "BillingAnchor",
    "BillingFrequency",
    "BillingProvider",
    "CommitType",
    "ConversionOperation",
    "InvoiceStatus",
    "LedgerEntryType",
    "LineType",
    "OverrideType",
    "PaymentStatus",
    "PreviewMode",
    "ProductType",
    "RateType",
    "RoundingMethod",
    "SyncStatus",
    "TierMode",
    "UnratedReason",
]
