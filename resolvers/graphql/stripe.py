"""Stripe (SPEC §11): the organization's settings and the retry of a failed push."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from billing.errors import ConflictError, ValidationError
from billing.validation import validate_stripe_settings
from models.store.invoice_syncs import retry_failed
from models.store.invoices import invoice_by_id
from models.store.stripe_accounts import StripeSettings as StoredSettings
from models.store.stripe_accounts import save_stripe_settings, stripe_settings_of
from notifications.ssrf import check_destination
from resolvers.graphql.context import Context, mutation, not_found, read, require
from resolvers.graphql.loaders import stored_invoice_view
from schema.invoices import Invoice
from schema.stripe import StripeSettings, StripeSettingsInput


def _hint(key: str) -> str:
    kind = "_".join(key.split("_")[:2]) if key.count("_") >= 2 else key[:2]
    return f"{kind}_…{key[-4:]}"


def _settings_view(stored: StoredSettings) -> StripeSettings:
    return StripeSettings(
        secret_key_hint=_hint(stored.secret_key),
        webhook_secret_set=stored.webhook_secret is not None,
        api_base=stored.api_base,
        send_zero_total_invoices=stored.send_zero_total,
        updated_at=stored.updated_at,
    )


async def stripe_settings(info: Info[Context, Any]) -> StripeSettings | None:
    """The organization's Stripe settings (admin keys), or null when not set up."""
    principal = require(info, "admin")
    async with read(info) as conn:
        found = await stripe_settings_of(conn, principal.org_id)
    return None if found is None else _settings_view(found)


def _given(value: Any, current: Any) -> Any:
    return current if value is strawberry.UNSET else value


def _flag(value: bool | None, current: bool) -> bool:
    return current if value is None or value is strawberry.UNSET else value


async def set_stripe_settings(
    info: Info[Context, Any], input: StripeSettingsInput
) -> StripeSettings:
    """Set the organization's Stripe settings; omitted fields keep their values."""
    principal = require(info, "admin")
    async with read(info) as conn:
        current = await stripe_settings_of(conn, principal.org_id)
    secret_key = _given(input.secret_key, current and current.secret_key)
    if not secret_key:
        raise ValidationError("secret_key", "a Stripe secret key is required")
    settings = StoredSettings(
        secret_key=secret_key,
        webhook_secret=_given(input.webhook_signing_secret, current and current.webhook_secret),
        api_base=_given(input.api_base, current and current.api_base),
        send_zero_total=_flag(
            input.send_zero_total_invoices, current is not None and current.send_zero_total
        ),
        updated_at=info.context.services.clock(),
    )
    validate_stripe_settings(settings.secret_key, settings.webhook_secret)
    if settings.api_base is not None:
        await check_destination(settings.api_base, info.context.services.webhook_allowed_private)
    async with mutation(info, principal) as (conn, audit):
        await save_stripe_settings(conn, principal.org_id, settings)
        view = _settings_view(settings)
        changes = {
            "secret_key_hint": view.secret_key_hint,
            "webhook_secret_set": view.webhook_secret_set,
            "api_base": settings.api_base,
            "send_zero_total_invoices": settings.send_zero_total,
        }
        await audit("stripe_settings", principal.org_id, changes)
    return view


async def retry_invoice_sync(info: Info[Context, Any], invoice_id: strawberry.ID) -> Invoice:
    """Push an invoice whose push ended in BILLING_PROVIDER_ERROR again (after fixing the
    cause: the customer's link, the Stripe settings). CONFLICT when it is not failed."""
    principal = require(info, "admin")
    now = info.context.services.clock()
    async with mutation(info, principal) as (conn, audit):
        stored = await invoice_by_id(conn, principal.org_id, str(invoice_id))
        if stored is None:
            raise not_found("invoice", invoice_id)
        if not await retry_failed(conn, principal.org_id, stored.id, now):
            raise ConflictError("the invoice has no failed push to Stripe to retry", "invoice_id")
        await audit("invoice", stored.id, {"billing_provider": "retry"})
        audit.outbox.sync_invoices([(stored.id, now)])
    return stored_invoice_view(stored)
