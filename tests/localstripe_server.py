"""Launch a localstripe server with the Stripe behaviours Meterline's tests rely on.

Usage (from the repository root): ``python -m tests.localstripe_server --port N
[--webhook-delay SECONDS]``

localstripe 1.15.x is used as-is, plus these additions (see localstripe issue #173):

* the store never reads or writes ``/tmp/localstripe.pickle`` (several servers may run at once);
* ``POST /v1/invoices`` without ``subscription`` creates a one-off draft invoice, honouring
  ``pending_invoice_items_behavior`` (default ``exclude``, as Stripe does since 2022-08-01;
  ``include`` answers 400 "Nothing to invoice for customer" when there are no pending items),
  ``collection_method``, ``days_until_due``, ``due_date``, ``auto_advance``, ``currency`` and
  ``discounts=""``;
* ``POST /v1/invoiceitems`` with ``invoice`` adds the item to that draft invoice (400 when
  the invoice is not a draft), as Stripe does; localstripe alone leaves it off the invoice;
* ``POST /v1/invoices/{id}/finalize`` (emits ``invoice.finalized``);
* ``POST /v1/invoices/{id}/pay``: a draft is finalized first; a declined card answers 402
  ``card_error``/``card_declined`` and emits ``payment_intent.payment_failed`` and
  ``invoice.payment_failed`` (localstripe alone answers 200 and emits nothing);
* ``POST /v1/invoices/{id}/void``: only open invoices, works when no payment was ever attempted
  (localstripe alone answers 400 then), emits ``invoice.voided``;
* every successful payment also emits ``invoice.paid`` (next to ``invoice.payment_succeeded``);
* ``Idempotency-Key`` on POST: a repeated key (same ``Authorization``) replays the first response
  with ``Idempotent-Replayed: true`` and does nothing; a repeated key with different parameters
  answers 400 ``idempotency_error``; ``DELETE /_config/data`` also forgets the keys;
* a request log for tests, reachable without an API key: ``GET /_test/requests`` returns every
  ``/v1/*`` request as ``{"method", "path", "idempotency_key", "replayed", "status"}``,
  ``DELETE /_test/requests`` clears it;
* ``DELETE /_test/webhooks/{id}`` unregisters a webhook registered with
  ``POST /_config/webhooks/{id}`` (form fields ``url``, ``secret``, ``events``).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable
from typing import Any

from aiohttp import web
from localstripe import resources, server, webhooks
from localstripe.errors import UserError
from localstripe.resources import (
    Customer,
    Event,
    Invoice,
    InvoiceItem,
    InvoiceLineItem,
    PaymentIntent,
    Subscription,
    schedule_webhook,
    try_convert_to_bool,
    try_convert_to_int,
)

from tests.localstripe_requests import Handler, install

# ---------------------------------------------------------------------------------------------
# 1. No pickle file on disk.


def _no_op(self: Any) -> None:
    return None


resources.Store.dump_to_disk = _no_op  # type: ignore[method-assign]
resources.Store.try_load_from_disk = _no_op  # type: ignore[method-assign]


# ---------------------------------------------------------------------------------------------
# 2. One-off invoices.

_original_invoice_api_create = Invoice._api_create
_original_on_payment_success = Invoice._on_payment_success

# Defaults for invoices created by localstripe itself (subscriptions), so that `_export` shows the
# fields and `POST /v1/invoices/{id}` may update them.
Invoice.auto_advance = True
Invoice.days_until_due = None
Invoice.due_date = None

_PENDING_BEHAVIOURS = ("include", "exclude", "include_and_require")
_COLLECTION_METHODS = ("charge_automatically", "send_invoice")
_EXCLUDED = "in_excluded_by_launcher"


def _unexpected(kwargs: dict[str, Any]) -> None:
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs))


def _pending_items(customer: str) -> list[Any]:
    items = InvoiceItem._api_list_all(None, customer=customer, limit=99)._list
    return [ii for ii in items if ii.invoice is None]


def _invoice_api_create(
    cls: type[Invoice],
    customer: Any = None,
    subscription: Any = None,
    description: Any = None,
    metadata: Any = None,
    pending_invoice_items_behavior: Any = None,
    collection_method: Any = None,
    days_until_due: Any = None,
    due_date: Any = None,
    auto_advance: Any = None,
    currency: Any = None,
    discounts: Any = None,
    default_tax_rates: Any = None,
    tax_percent: Any = None,
    **kwargs: Any,
) -> Invoice:
    _unexpected(kwargs)
    auto_advance = try_convert_to_bool(auto_advance)
    days_until_due = try_convert_to_int(days_until_due)
    due_date = try_convert_to_int(due_date)
    try:
        assert pending_invoice_items_behavior in (None, *_PENDING_BEHAVIOURS)
        assert collection_method in (None, *_COLLECTION_METHODS)
        assert auto_advance is None or type(auto_advance) is bool
        assert days_until_due is None or (type(days_until_due) is int and days_until_due >= 0)
        assert due_date is None or type(due_date) is int
        assert currency is None or (type(currency) is str and currency)
        assert metadata is None or type(metadata) is dict
        assert discounts in (None, "")  # "": no discount (localstripe has no coupons here)
    except AssertionError:
        raise UserError(400, "Bad request") from None

    if subscription is not None:
        obj = _original_invoice_api_create(
            customer=customer,
            subscription=subscription,
            tax_percent=tax_percent,
            default_tax_rates=default_tax_rates,
            description=description,
            metadata=metadata,
            pending_invoice_items_behavior=pending_invoice_items_behavior,
        )
    else:
        if type(customer) is not str or not customer.startswith("cus_"):
            raise UserError(400, "Bad request")
        Customer._api_retrieve(customer)  # 404 if unknown
        behaviour = pending_invoice_items_behavior or "exclude"
        pending = _pending_items(customer)
        if behaviour != "exclude" and not pending:
            raise UserError(400, "Nothing to invoice for customer")
        # Invoice.__init__ sweeps every pending item of the customer: hide them for "exclude".
        hidden = pending if behaviour == "exclude" else []
        for ii in hidden:
            ii.invoice = _EXCLUDED
        try:
            # upcoming=True: no `invoice.created` yet, it is sent below once all fields are set.
            obj = cls(
                customer=customer,
                description=description,
                metadata=metadata,
                default_tax_rates=default_tax_rates,
                tax_percent=tax_percent,
                upcoming=True,
            )
        finally:
            for ii in hidden:
                ii.invoice = None
        obj.auto_advance = False
        if currency is not None and not obj.lines._list:
            obj.currency = currency.lower()

    if collection_method is not None:
        obj.collection_method = collection_method
    if auto_advance is not None:
        obj.auto_advance = auto_advance
    obj.days_until_due = days_until_due
    if due_date is None and days_until_due is not None:
        due_date = obj.created + days_until_due * 86400
    obj.due_date = due_date

    if subscription is None:
        schedule_webhook(Event("invoice.created", obj))
    return obj


def _on_payment_success(self: Invoice) -> None:
    _original_on_payment_success(self)
    schedule_webhook(Event("invoice.paid", self))


_original_item_api_create = InvoiceItem._api_create


def _item_api_create(cls: type[InvoiceItem], invoice: Any = None, **data: Any) -> InvoiceItem:
    if invoice is None:
        return _original_item_api_create(**data)
    target = Invoice._api_retrieve(invoice)  # 404 if unknown
    if target.status != "draft":
        raise UserError(400, f"You can only add items to a draft invoice; it is {target.status}.")
    item = _original_item_api_create(invoice=invoice, **data)
    target.lines._list.append(InvoiceLineItem(item))
    return item


Invoice._api_create = classmethod(_invoice_api_create)  # type: ignore[method-assign,assignment]
InvoiceItem._api_create = classmethod(_item_api_create)  # type: ignore[method-assign,assignment]
Invoice._on_payment_success = _on_payment_success  # type: ignore[method-assign]


# ---------------------------------------------------------------------------------------------
# 3. Finalize, and Stripe-like pay / void routes.


def _finalize(obj: Invoice) -> None:
    obj._finalize()
    if obj.due_date is None and obj.days_until_due is not None:
        obj.due_date = int(time.time()) + obj.days_until_due * 86400
    schedule_webhook(Event("invoice.finalized", obj))
    if obj.status == "paid":  # nothing to pay: Stripe marks it paid right away
        obj._on_payment_success()


def api_finalize_invoice(id: str, auto_advance: Any = None, **kwargs: Any) -> Invoice:
    _unexpected(kwargs)
    auto_advance = try_convert_to_bool(auto_advance)
    if auto_advance is not None and type(auto_advance) is not bool:
        raise UserError(400, "Bad request")
    obj = Invoice._api_retrieve(id)
    if obj.status != "draft":
        raise UserError(
            400, "This invoice is already finalized, you can't re-finalize a non-draft invoice."
        )
    if auto_advance is not None:
        obj.auto_advance = auto_advance
    _finalize(obj)
    return obj


def api_pay_invoice(id: str, **kwargs: Any) -> Invoice:
    _unexpected(kwargs)
    obj = Invoice._api_retrieve(id)
    if obj.status == "draft":
        _finalize(obj)
        if obj.status == "paid":
            return obj
    Invoice._api_pay_invoice(id)
    if obj.payment_intent:
        pi = PaymentIntent._api_retrieve(obj.payment_intent)
        if pi.latest_charge is not None and pi.latest_charge.status == "failed":
            try:
                # Emits payment_intent.payment_failed + invoice.payment_failed, raises a 402.
                pi._report_failure()
            except UserError as e:
                if e.code == 402:
                    e.body["error"]["type"] = "card_error"
                raise
    return obj


def api_void_invoice(id: str, **kwargs: Any) -> Invoice:
    _unexpected(kwargs)
    obj = Invoice._api_retrieve(id)
    if obj.status != "open":
        raise UserError(400, f"You can only void open invoices; this invoice is {obj.status}.")
    if obj.payment_intent:
        PaymentIntent._api_cancel(obj.payment_intent)
    obj._draft = False
    obj._voided = True
    obj.status_transitions["voided_at"] = int(time.time())
    if obj.subscription:
        Subscription._api_retrieve(obj.subscription)._on_initial_payment_voided(obj)
    schedule_webhook(Event("invoice.voided", obj))
    return obj


def _override_route(method: str, path: str, handler: Handler) -> None:
    for route in server.app.router.routes():
        resource = route.resource
        if route.method == method and resource is not None and resource.canonical == path:
            route._handler = handler  # the route was registered by localstripe first
            return
    raise RuntimeError(f"localstripe has no route {method} {path}")


for _path, _func in (
    ("/v1/invoices/{id}/pay", api_pay_invoice),
    ("/v1/invoices/{id}/void", api_void_invoice),
):
    _override_route("POST", _path, server.api_extra(_func, _path))

server.app.router.add_post(
    "/v1/invoices/{id}/finalize",
    server.api_extra(api_finalize_invoice, "/v1/invoices/{id}/finalize"),
)


# ---------------------------------------------------------------------------------------------
# Webhook delivery delay (localstripe waits 1 s before sending each event).


class _WebhookAsyncio:
    """Stands in for `asyncio` inside localstripe.webhooks, with a configurable delay."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    def sleep(self, seconds: float, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return asyncio.sleep(self.delay)


install(server.app)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--webhook-delay",
        type=float,
        default=1.0,
        help="seconds between an event and its webhook delivery (localstripe: 1)",
    )
    args = parser.parse_args()
    webhooks.asyncio = _WebhookAsyncio(args.webhook_delay)  # type: ignore[assignment]
    web.run_app(server.app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
