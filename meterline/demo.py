"""``serve --demo``: a demo organization and an admin key that can also ingest."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from meterline.settings import Settings
from models.db import Database
from models.store.api_keys import authenticate, create_api_key
from models.store.organizations import get_or_create_organization

DEMO_ORG = "Demo"


def demo_key_file(settings: Settings) -> Path:
    return settings.redis_data_dir.parent / ".meterline-demo-key"


async def seed_demo(settings: Settings, clock: Callable[[], datetime]) -> str:
    """Idempotent: reuses the demo key kept (mode 600) beside the database while it is valid."""
    key_file = demo_key_file(settings)
    db = Database(settings.database_url)
    try:
        async with db.write() as conn:
            org_id = await get_or_create_organization(conn, DEMO_ORG, clock())
            if key_file.exists():
                kept = key_file.read_text().strip()
                principal = await authenticate(conn, kept, clock())
                if principal is not None and principal.org_id == org_id:
                    return kept
            _, secret = await create_api_key(
                conn, org_id, ["admin", "ingest"], clock(), name="demo"
            )
    finally:
        await db.dispose()
    key_file.write_text(secret + "\n")
    os.chmod(key_file, 0o600)
    return secret
