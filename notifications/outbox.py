"""The transactional outbox (SPEC §10): what a change causes is written in the change's own
transaction (webhook messages with one pending delivery per subscribed endpoint, requests
to evaluate alerts), and the work it asks of Redis (delivery and evaluation jobs,
subscription pushes) is handed over only after that transaction commits."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncConnection

from models.ids import new_id
from models.store.alert_requests import request_evaluations
from models.store.webhook_endpoints import Endpoint, subscribed_endpoints
from models.store.webhook_messages import Due, insert_message
from notifications.catalog import WebhookEvent, payload
from notifications.pubsub import Topic, publish
from notifications.queue import enqueue_alert_evaluation, enqueue_deliveries, enqueue_stripe_syncs


class Outbox:
    """Collects what one transaction emits and asks for; :meth:`dispatch` after the commit."""

    def __init__(self) -> None:
        self._due: list[Due] = []
        self._endpoints: dict[tuple[str, str], list[Endpoint]] = {}
        self._evaluations: dict[str, set[str]] = {}
        self._pushes: dict[tuple[str, Topic], set[str]] = {}
        self._syncs: list[tuple[str, datetime]] = []

    async def emit(
        self, conn: AsyncConnection, org_id: str, event: WebhookEvent, now: datetime
    ) -> str:
        """Write ``event`` as a message (created at ``now``) and its deliveries in ``conn``'s
        transaction; returns the message id (the stable ``webhook-id``)."""
        key = (org_id, event.type)
        if key not in self._endpoints:
            self._endpoints[key] = await subscribed_endpoints(conn, org_id, event.type)
        message_id = new_id("msg")
        self._due += await insert_message(
            conn,
            org_id,
            message_id=message_id,
            type=event.type,
            customer_id=event.customer_id,
            body=payload(message_id, event, now),
            now=now,
            endpoint_ids=[e.id for e in self._endpoints[key]],
        )
        return message_id

    def add_due(self, due: list[Due]) -> None:
        """Deliveries made due some other way (a replay, a retry) to enqueue with the rest."""
        self._due += due

    async def evaluate(
        self, conn: AsyncConnection, org_id: str, customer_ids: Iterable[str], now: datetime
    ) -> None:
        """Request, in ``conn``'s transaction, an evaluation of these customers' alerts
        (those a live alert watches); their jobs are enqueued by :meth:`dispatch`."""
        watched = await request_evaluations(conn, org_id, customer_ids, now)
        self._evaluations.setdefault(org_id, set()).update(watched)

    def push(self, org_id: str, topics: Iterable[Topic], customer_ids: Iterable[str]) -> None:
        """Tell these customers' subscribers, after the commit, what changed."""
        wanted = set(customer_ids)
        for topic in topics:
            self._pushes.setdefault((org_id, topic), set()).update(wanted)

    def sync_invoices(self, due: Iterable[tuple[str, datetime]]) -> None:
        """Invoices whose Stripe push (or voiding there) the transaction made due, as
        (invoice id, due time); invoices without a push are ignored by the job."""
        self._syncs += due

    async def dispatch(self, pool: ArqRedis) -> None:
        """After the commit: enqueue a ``deliver_webhook`` job per delivery written, an
        ``evaluate_alerts`` job per customer requested and a ``sync_stripe`` job per invoice
        to push, and publish the pushes."""
        due, self._due = self._due, []
        evaluations, self._evaluations = self._evaluations, {}
        pushes, self._pushes = self._pushes, {}
        syncs, self._syncs = self._syncs, []
        await enqueue_deliveries(pool, due)
        await enqueue_stripe_syncs(pool, syncs)
        for org_id, customer_ids in evaluations.items():
            await enqueue_alert_evaluation(pool, org_id, customer_ids)
        for (org_id, topic), customer_ids in pushes.items():
            await publish(pool, topic, org_id, customer_ids)
