"""The transactional outbox (SPEC §10): a notification is written in the transaction of
its cause, with one pending delivery per subscribed endpoint; the jobs that send them are
enqueued only after that transaction commits."""

from __future__ import annotations

from datetime import datetime

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncConnection

from models.ids import new_id
from models.store.webhook_endpoints import Endpoint, subscribed_endpoints
from models.store.webhook_messages import Due, insert_message
from notifications.catalog import WebhookEvent, payload
from notifications.queue import enqueue_deliveries


class Outbox:
    """Collects what one transaction emits; :meth:`dispatch` after the commit."""

    def __init__(self) -> None:
        self._due: list[Due] = []
        self._endpoints: dict[tuple[str, str], list[Endpoint]] = {}

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
        """Deliveries made due some other way (a replay) to enqueue with the rest."""
        self._due += due

    async def dispatch(self, pool: ArqRedis) -> None:
        """Enqueue a ``deliver_webhook`` job per delivery written (call after commit)."""
        due, self._due = self._due, []
        await enqueue_deliveries(pool, due)
