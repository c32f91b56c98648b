"""The ``meterline`` command (Typer)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from arq.connections import RedisSettings, create_pool
from rich.console import Console

from meterline.clock import SystemClock
from meterline.demo import demo_customer_token, seed_demo
from meterline.embedded_redis import EmbeddedRedis
from meterline.settings import Settings
from models.db import Database
from models.migrate import upgrade
from models.store.api_keys import create_api_key
from models.store.organizations import get_or_create_organization
from resolvers.graphql.app import schema_sdl
from workers.worker import build_worker

app = typer.Typer(help="Meterline: usage-based billing engine.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
console = Console()


class Scope(StrEnum):
    admin = "admin"
    read = "read"
    ingest = "ingest"


async def _migrate(settings: Settings) -> None:
    db = Database(settings.database_url)
    try:
        await upgrade(db)
    finally:
        await db.dispose()


@app.command()
def migrate() -> None:
    """Bring the database to the newest schema."""
    asyncio.run(_migrate(Settings()))
    console.print("[green]database is up to date[/green]")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="API processes.")] = 1,
    demo: Annotated[bool, typer.Option(help="Seed a demo organization, print its key.")] = False,
) -> None:
    """Run the API. With no REDIS_URL: an embedded Redis and an in-process worker."""
    settings = Settings()
    embedded = None
    if not settings.redis_url:
        embedded = EmbeddedRedis(settings.redis_data_dir)
        os.environ["METERLINE_REDIS_URL"] = embedded.url
        os.environ["METERLINE_RUN_WORKER_IN_PROCESS"] = "true"
        console.print(f"embedded Redis at {embedded.url}; worker runs in-process")
    if settings.auto_migrate:
        asyncio.run(_migrate(settings))
    if demo:
        key = asyncio.run(seed_demo(Settings(), SystemClock()))
        token = asyncio.run(demo_customer_token(Settings(), SystemClock()))
        print(f"API key: {key}", flush=True)
        print(f"Demo page: http://{host}:{port}/embed/demo?token={token}", flush=True)
    # uvicorn re-raises SIGTERM after its graceful shutdown; make that an exit that runs
    # the cleanup below instead of killing the process with the embedded Redis still up.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    try:
        uvicorn.run("meterline.app:create_app", factory=True, host=host, port=port, workers=workers)
    finally:
        if embedded is not None:
            embedded.close()


@app.command()
def worker() -> None:
    """Run ARQ workers against REDIS_URL (production layout)."""
    settings = Settings()
    if not settings.redis_url:
        raise typer.BadParameter("set REDIS_URL: a standalone worker needs a shared Redis")
    redis_url = settings.redis_url

    async def run() -> None:
        db = Database(settings.database_url)
        pool = await create_pool(RedisSettings.from_dsn(redis_url))
        try:
            await build_worker(
                pool,
                db,
                SystemClock(),
                handle_signals=False,
                grace_period=settings.grace_period,
                webhooks=settings.webhook_policy(),
                sweep_every=settings.outbox_sweep_seconds,
            ).async_run()
        finally:
            await pool.aclose()
            await db.dispose()

    asyncio.run(run())


@keys_app.command("create")
def keys_create(
    org: Annotated[str, typer.Option(help="Organization name (created if missing).")],
    scope: Annotated[list[Scope], typer.Option(help="Scope; repeat for several.")],
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
) -> None:
    """Create an API key and print it once."""
    settings = Settings()

    async def create() -> str:
        db = Database(settings.database_url)
        clock = SystemClock()
        try:
            async with db.write() as conn:
                org_id = await get_or_create_organization(conn, org, clock())
                _, secret = await create_api_key(
                    conn,
                    org_id,
                    [s.value for s in scope],
                    clock(),
                    name=name,
                    environment=settings.api_key_environment,
                )
                return secret
        finally:
            await db.dispose()

    print(asyncio.run(create()))


@app.command("export-schema")
def export_schema(
    output: Annotated[Path, typer.Option(help="Where to write the SDL.")] = Path(
        "schema/schema.graphql"
    ),
) -> None:
    """Write the GraphQL schema (SDL)."""
    output.write_text(schema_sdl())
    console.print(f"wrote {output}")


if __name__ == "__main__":
    app()
