"""The root Query and Mutation types: every field names its resolver."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from models.store.organizations import get_organization
from resolvers.graphql import access as access_api
from resolvers.graphql import alerts as alerts_api
from resolvers.graphql import catalog as catalog_api
from resolvers.graphql import contracts as contracts_api
from resolvers.graphql import customers as customers_api
from resolvers.graphql import events as events_api
from resolvers.graphql import invoices as invoices_api
from resolvers.graphql import metrics as metrics_api
from resolvers.graphql import offset_rules as offset_rules_api
from resolvers.graphql import stripe as stripe_api
from resolvers.graphql import webhooks as webhooks_api
from resolvers.graphql.context import Context, not_found, read, require
from schema.access import ApiKey, AuditEntry, CreatedApiKey, CustomerToken
from schema.alerts import Alert
from schema.catalog import Product, RateCard
from schema.contracts import Contract, Package
from schema.customers import Customer
from schema.events import FoundEvent
from schema.invoices import CostPreview, Invoice
from schema.metrics import BillableMetric
from schema.organization import Organization
from schema.pagination import Connection
from schema.stripe import StripeSettings
from schema.views import view
from schema.webhooks import OffsetRule, WebhookEndpoint, WebhookMessage


@strawberry.type
class Query:
    @strawberry.field(description="The caller's organization.")
    async def organization(self, info: Info[Context, Any]) -> Organization:
        principal = require(info, "read")
        async with read(info) as conn:
            found = await get_organization(conn, principal.org_id)
        if found is None:
            raise not_found("organization", principal.org_id)
        return view(Organization, found)

    billable_metrics: list[BillableMetric] = strawberry.field(
        resolver=metrics_api.billable_metrics, description="The organization's billable metrics."
    )
    products: Connection[Product] = strawberry.field(resolver=catalog_api.products)
    rate_cards: Connection[RateCard] = strawberry.field(resolver=catalog_api.rate_cards)
    rate_card: RateCard = strawberry.field(resolver=catalog_api.rate_card)
    customers: Connection[Customer] = strawberry.field(resolver=customers_api.customers)
    customer: Customer = strawberry.field(
        resolver=customers_api.customer,
        description="A customer (a customer token may read its own customer only).",
    )
    contracts: Connection[Contract] = strawberry.field(resolver=contracts_api.contracts)
    contract: Contract = strawberry.field(resolver=contracts_api.contract)
    packages: Connection[Package] = strawberry.field(resolver=contracts_api.packages)
    invoice: Invoice = strawberry.field(resolver=invoices_api.invoice)
    cost_preview: CostPreview = strawberry.field(resolver=invoices_api.cost_preview)
    stripe_settings: StripeSettings | None = strawberry.field(resolver=stripe_api.stripe_settings)
    search_events: list[FoundEvent] = strawberry.field(
        resolver=events_api.search_events_by_id,
        description="Stored events by transaction id (1–100), with what became of each.",
    )
    alerts: list[Alert] = strawberry.field(resolver=alerts_api.alerts)
    api_keys: list[ApiKey] = strawberry.field(resolver=access_api.api_keys)
    audit_log: Connection[AuditEntry] = strawberry.field(
        resolver=access_api.audit_log, description="Every mutation, newest first."
    )
    webhook_endpoints: Connection[WebhookEndpoint] = strawberry.field(
        resolver=webhooks_api.webhook_endpoints
    )
    webhook_endpoint: WebhookEndpoint = strawberry.field(resolver=webhooks_api.webhook_endpoint)
    webhook_messages: Connection[WebhookMessage] = strawberry.field(
        resolver=webhooks_api.webhook_messages,
        description="Webhook messages, oldest first, with their deliveries and attempts.",
    )
    webhook_message: WebhookMessage = strawberry.field(resolver=webhooks_api.webhook_message)
    offset_rules: list[OffsetRule] = strawberry.field(
        resolver=offset_rules_api.offset_rules,
        description="Offset notification rules, oldest first.",
    )


@strawberry.type
class Mutation:
    create_billable_metric: BillableMetric = strawberry.field(
        resolver=metrics_api.create_billable_metric,
        description="Create a billable metric; stored events of the last 34 days are back-filled.",
    )
    archive_billable_metric: BillableMetric = strawberry.field(
        resolver=metrics_api.archive_billable_metric
    )
    create_product: Product = strawberry.field(resolver=catalog_api.create_product)
    update_product: Product = strawberry.field(resolver=catalog_api.update_product)
    archive_product: Product = strawberry.field(resolver=catalog_api.archive_product)
    create_rate_card: RateCard = strawberry.field(resolver=catalog_api.create_rate_card)
    add_rates: RateCard = strawberry.field(resolver=catalog_api.add_rates)
    create_customer: Customer = strawberry.field(resolver=customers_api.create_customer)
    update_customer: Customer = strawberry.field(resolver=customers_api.update_customer)
    set_billing_provider: Customer = strawberry.field(resolver=customers_api.set_billing_provider)
    create_contract: Contract = strawberry.field(resolver=contracts_api.create_contract)
    create_contract_from_package: Contract = strawberry.field(
        resolver=contracts_api.create_contract_from_package
    )
    edit_contract: Contract = strawberry.field(resolver=contracts_api.edit_contract)
    archive_contract: Contract = strawberry.field(resolver=contracts_api.archive_contract)
    create_package: Package = strawberry.field(resolver=contracts_api.create_package)
    create_alert: Alert = strawberry.field(resolver=alerts_api.create_alert)
    archive_alert: Alert = strawberry.field(resolver=alerts_api.archive_alert)
    reset_alert: Alert = strawberry.field(resolver=alerts_api.reset_alert)
    void_invoice: Invoice = strawberry.field(resolver=invoices_api.void_invoice)
    regenerate_invoice: Invoice = strawberry.field(resolver=invoices_api.regenerate_invoice)
    retry_invoice_sync: Invoice = strawberry.field(resolver=stripe_api.retry_invoice_sync)
    set_stripe_settings: StripeSettings = strawberry.field(resolver=stripe_api.set_stripe_settings)
    create_api_key: CreatedApiKey = strawberry.field(resolver=access_api.create_api_key)
    revoke_api_key: ApiKey = strawberry.field(resolver=access_api.revoke_api_key)
    create_customer_token: CustomerToken = strawberry.field(
        resolver=access_api.create_customer_token
    )
    create_webhook_endpoint: WebhookEndpoint = strawberry.field(
        resolver=webhooks_api.create_webhook_endpoint
    )
    update_webhook_endpoint: WebhookEndpoint = strawberry.field(
        resolver=webhooks_api.update_webhook_endpoint
    )
    delete_webhook_endpoint: WebhookEndpoint = strawberry.field(
        resolver=webhooks_api.delete_webhook_endpoint
    )
    rotate_webhook_endpoint_secret: WebhookEndpoint = strawberry.field(
        resolver=webhooks_api.rotate_webhook_endpoint_secret
    )
    replay_webhook_message: WebhookMessage = strawberry.field(
        resolver=webhooks_api.replay_webhook_message
    )
    replay_failed_webhook_messages: int = strawberry.field(
        resolver=webhooks_api.replay_failed_webhook_messages,
        description="Re-send every failed delivery of an endpoint since a time; returns how many.",
    )
    create_offset_rule: OffsetRule = strawberry.field(resolver=offset_rules_api.create_offset_rule)
    archive_offset_rule: OffsetRule = strawberry.field(
        resolver=offset_rules_api.archive_offset_rule
    )
