"""Bring a database to the newest schema with Alembic (same history on every dialect)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

import migrations
from models.db import Database

MIGRATIONS_DIR = Path(migrations.__file__).parent


def alembic_config(connection: Any) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


async def upgrade(db: Database, revision: str = "head") -> None:
    async with db.write() as connection:
        await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), revision))


async def autogenerate(db: Database, message: str) -> None:
    """Developer helper: write a new revision from the difference with the models."""
    async with db.write() as connection:
        await connection.run_sync(
            lambda sync: command.revision(alembic_config(sync), message, autogenerate=True)
        )
