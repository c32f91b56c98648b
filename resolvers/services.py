"""What every request handler reaches: set on ``app.state.services`` by the app factory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from arq.connections import ArqRedis
from starlette.requests import Request

from models.db import Database
from notifications.pubsub import ChangeFeed

if TYPE_CHECKING:
    from resolvers.rate_limits import RateLimiter


@dataclass(frozen=True)
class Services:
    db: Database
    clock: Callable[[], datetime]
    redis: ArqRedis
    max_body_bytes: int
    grace_period: timedelta
    feed: ChangeFeed
    rate_limiter: RateLimiter
    webhook_allowed_private: tuple[str, ...] = ()
    webhook_secret_overlap: timedelta = timedelta(hours=24)
    production: bool = False


def services_of(request: Request) -> Services:
    found = request.app.state.services
    assert isinstance(found, Services)
    return found
