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

from billing.errors import NotFoundError
from meterline.clock import SystemClock
from meterline.demo import demo_customer_token, seed_demo
from meterline.embedded_redis import EmbeddedRedis
from meterline.event_files import EventFileError, FileFormat, format_of
from meterline.event_import import BATCH_SIZE, MAX_BATCH_SIZE, render_summary, run_import
from meterline.invoice_export import ExportFormat, export_invoices, open_output, parse_since
from meterline.observability import configure_logging
from meterline.settings import Settings
from meterline.status import status_command
from models.migrate import upgrade
from models.store.api_keys import create_api_key
from models.store.organizations import get_or_create_organization
from resolvers.graphql.app import schema_sdl
from workers.worker import build_worker, run_worker

app = typer.Typer(help="Meterline: usage-based billing engine.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
export_app = typer.Typer(help="Export stored data.", no_args_is_help=True)
app.add_typer(export_app, name="export")
console = Console()
stderr = Console(stderr=True)


class Scope(StrEnum):
    admin = "admin"
    read = "read"
    ingest = "ingest"


async def _migrate(settings: Settings) -> None:
    db = settings.database()
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
    configure_logging(settings.log_format)

    async def run() -> None:
        db = settings.database()
        pool = await create_pool(RedisSettings.from_dsn(redis_url))
        try:
            worker = build_worker(
                pool,
                db,
                SystemClock(),
                handle_signals=False,
                grace_period=settings.grace_period,
                webhooks=settings.webhook_policy(),
                sweep_every=settings.outbox_sweep_seconds,
                metrics_port=settings.worker_metrics_port,
            )
            await run_worker(worker)
        finally:
            await pool.aclose()
            await db.dispose()

    asyncio.run(run())


@app.command()
def status() -> None:
    """Queue depth, outbox backlog, pending Stripe pushes and failing webhook endpoints."""
    status_command()


@keys_app.command("create")
def keys_create(
    org: Annotated[str, typer.Option(help="Organization name (created if missing).")],
    scope: Annotated[list[Scope], typer.Option(help="Scope; repeat for several.")],
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
) -> None:
    """Create an API key and print it once."""
    settings = Settings()

    async def create() -> str:
        db = settings.database()
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


IMPORT_HELP = (
    "Bulk-load usage events with the validation and dedupe of POST /v1/ingest.\n\n"
    "JSONL: one event object per line, as in an ingest body. CSV: columns transaction_id, "
    "customer_id, event_type, timestamp, and properties (a JSON object) or properties.NAME "
    "columns (text, kept exact; empty cells are left out). The API's timestamp window "
    "applies: at most 34 days old, 5 minutes ahead.\n\n"
    "Exit status: 0 when every event was accepted or a duplicate, 1 when any was rejected "
    "(listed by code with line numbers), 2 for an unknown organization or a file that "
    "cannot be imported at all."
)


@app.command("import", help=IMPORT_HELP)
def import_events(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, metavar="FILE", help="A .jsonl or .csv file of events."
        ),
    ],
    org: Annotated[str, typer.Option(help="Organization name (must exist).")],
    file_format: Annotated[
        FileFormat | None, typer.Option("--format", help="The file's format (else its extension).")
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_BATCH_SIZE,
            help="Events per transaction (larger is faster; on SQLite the API waits for each).",
        ),
    ] = BATCH_SIZE,
) -> None:
    settings = Settings()
    try:
        summary = asyncio.run(
            run_import(
                settings.database_url,
                settings.redis_url,
                file,
                format_of(file, file_format),
                org,
                SystemClock(),
                stderr,
                batch_size=batch_size,
            )
        )
    except NotFoundError as error:
        raise typer.BadParameter(error.message, param_hint="--org") from None
    except EventFileError as error:
        raise typer.BadParameter(str(error), param_hint="FILE") from None
    console.print(render_summary(summary))
    raise typer.Exit(1 if summary.rejected else 0)


@export_app.command("invoices")
def export_invoices_command(
    org: Annotated[str, typer.Option(help="Organization name (must exist).")],
    since: Annotated[
        str,
        typer.Option(
            metavar="DATE",
            help="Invoices whose period starts on or after it: a date (UTC) or an RFC 3339 time.",
        ),
    ],
    file_format: Annotated[
        ExportFormat, typer.Option("--format", help="csv (the only one yet).")
    ] = ExportFormat.csv,
    output: Annotated[str, typer.Option("--output", "-o", help="A file, or - for stdout.")] = "-",
    lines: Annotated[
        bool, typer.Option("--lines/--no-lines", help="A row per invoice line, or per invoice.")
    ] = True,
) -> None:
    """Finalized and voided invoices as CSV: exact decimal strings, ISO-8601 UTC times."""
    start = parse_since(since)
    if start is None:
        raise typer.BadParameter("a date (2026-04-01) or an RFC 3339 time", param_hint="--since")
    settings = Settings()
    try:
        with open_output(output) as out:
            count = asyncio.run(
                export_invoices(settings.database_url, org, start, out, lines=lines)
            )
    except NotFoundError as error:
        raise typer.BadParameter(error.message, param_hint="--org") from None
    stderr.print(f"exported {count:,} invoices" + ("" if output == "-" else f" to {output}"))


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
