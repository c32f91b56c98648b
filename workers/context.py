"""The typed context every job receives (ARQ hands jobs a plain dict)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from models.db import Database

CONTEXT_KEY = "meterline"


@dataclass(frozen=True)
class JobContext:
    db: Database
    clock: Callable[[], datetime]


def job_context(ctx: dict[str, Any]) -> JobContext:
    found = ctx[CONTEXT_KEY]
    assert isinstance(found, JobContext)
    return found
