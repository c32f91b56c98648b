"""Every benchmark, one table: each figure with its target, whether it is met, and its ratio
against this machine's raw limit measured in the same run.

    python bench/run.py [--quick]
        [--postgres-url postgresql+asyncpg://postgres@127.0.0.1:5432/test
         --redis-url redis://127.0.0.1:6379/0] [--only sqlite|postgres]
        [--markdown FILE] [--profile DIR]

Backends: SQLite + embedded Redis always; PostgreSQL + Redis when both URLs are given (a
private ``bench_<random>`` database is created there and dropped; Redis keys the run
writes are its own). The parts, in order (each is a function of its own module, which
also has its own command line with more detail):

1. ``raw_limits.measure``: raw SQLite / PostgreSQL insert rates, the Redis pipeline rate,
   the bare Starlette endpoint's events/s and RSS.
2. per backend, ``ingest.run_backend``: ``POST /v1/ingest`` events/s (batches of 100), and
   the server's RSS after 1M events accepted in all (``--quick``: after what the short
   run sent).
3. ``draft_invoice.run_backend``: GraphQL draft invoice p50/p95 at 10k, 100k, 1M events
   (``--quick``: 10k only).
4. ``alert_latency.run_backend``: ingest → webhook and ingest → subscription p50/p99 under
   5,000 events/s of background load (or what the server sustains of it, printed).
5. ``deliveries.run_backend``: webhook deliveries/s to a local receiver.

A part that fails is reported as failed in its rows and the run goes on. ``--quick``
(SQLite only, as without URLs) finishes in under two minutes on a 2-core machine.
``--profile DIR`` records the ingest server with py-spy during its measured window (the
sampling slows it: figures of a profiled run are not the benchmark's).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT / "bench", ROOT):  # run from a clone, installed or not
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import Any, TypeVar  # noqa: E402

import alert_latency  # noqa: E402
import deliveries  # noqa: E402
import draft_invoice  # noqa: E402
import ingest  # noqa: E402
import raw_limits  # noqa: E402
from harness import log, top_frames  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

T = TypeVar("T")
MB_TARGET = 300
RSS_EVENTS = 1_000_000
ALERT_RATE = 5_000.0

out = Console(width=max(160, Console().width))


@dataclass
class Settings:
    """What one run does; ``quick`` and full differ only here."""

    quick: bool
    raw_seconds: float
    http_seconds: float
    http_warmup: float
    clients: int
    ingest: ingest.Plan
    drafts: draft_invoice.Plan
    alerts: alert_latency.Plan
    deliveries: deliveries.Plan

    @classmethod
    def make(cls, quick: bool, profile: Path | None) -> Settings:
        if quick:
            return cls(
                quick=True,
                raw_seconds=1.0,
                http_seconds=3.0,
                http_warmup=1.0,
                clients=16,
                ingest=ingest.Plan(4.0, 1.0, 0.0, 16, profile, fill_to=0),
                drafts=draft_invoice.Plan((10_000,), repeat=20, warmup=3),
                alerts=alert_latency.Plan(probes=8, rate=ALERT_RATE, warmup=2.0),
                deliveries=deliveries.Plan(messages=500, raw_seconds=1.5),
            )
        return cls(
            quick=False,
            raw_seconds=3.0,
            http_seconds=10.0,
            http_warmup=2.0,
            clients=16,
            ingest=ingest.Plan(20.0, 3.0, 3.0, 16, profile, fill_to=RSS_EVENTS),
            drafts=draft_invoice.Plan(draft_invoice.SIZES, repeat=200, warmup=10),
            alerts=alert_latency.Plan(probes=50, rate=ALERT_RATE, warmup=5.0),
            deliveries=deliveries.Plan(messages=5_000, raw_seconds=3.0),
        )


@dataclass
class Row:
    figure: str
    value: str
    target: str = ""
    verdict: str = ""  # "met", "not met (…)", "skipped …", "failed …", "" (not a target)
    limit: str = ""
    ratio: str = ""
    section: str = ""


@dataclass
class Report:
    started: datetime
    header: list[str]
    rows: list[Row] = field(default_factory=list)
    durations: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- machine


def machine() -> list[str]:
    def first(path: str, key: str) -> str:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "unknown"

    mem = first("/proc/meminfo", "MemTotal")
    ram = f"{int(mem.split()[0]) / 1024 / 1024:.1f} GiB" if mem[0].isdigit() else mem
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"cores: {os.cpu_count()}, RAM: {ram}, CPU: {first('/proc/cpuinfo', 'model name')}",
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}; "
        f"load average before the run: {load}",
    ]


# ----------------------------------------------------------------------------- formatting


def num(value: float) -> str:
    return f"{value:,.0f}"


def short(count: int) -> str:
    """10k, 100k, 1M."""
    return f"{count // 1_000_000}M" if count >= 1_000_000 else f"{count // 1000}k"


def verdict_at_least(value: float, target: float, unit: str) -> str:
    if value >= target:
        return "met"
    return f"NOT MET (gap −{num(target - value)}{unit}, {value / target:.1%} of it)"


def verdict_at_most(value: float, target: float, unit: str) -> str:
    if value <= target:
        return "met"
    return f"NOT MET (gap +{value - target:,.0f} {unit}, {value / target:.1f}×)"


def failed(error: BaseException) -> str:
    return (
        f"failed: {type(error).__name__}: {str(error).splitlines()[0][:80] if str(error) else ''}"
    )


def timed(report: Report, part: str, call: Callable[[], T]) -> T | BaseException:
    """Run one part; its duration is kept and an exception is returned, not raised."""
    log.print(f"[bold cyan]── {part}[/]")
    started = time.monotonic()
    try:
        return call()
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # one part failing must not lose the others' figures
        log.print(f"[red]{part} failed:[/]\n{traceback.format_exc()}")
        report.notes.append(f"{part}: {failed(error)}")
        return error
    finally:
        report.durations[part] = time.monotonic() - started


# ----------------------------------------------------------------------------- rows


def raw_rows(limits: raw_limits.RawLimits | BaseException) -> list[Row]:
    section = "raw limits (this machine, this run)"
    if isinstance(limits, BaseException):
        return [Row("raw limits", "-", verdict=failed(limits), section=section)]
    rows = [
        Row(
            "SQLite insert, 100 rows/tx",
            f"{num(limits.sqlite_insert)} rows/s",
            section=section,
        )
    ]
    if limits.postgres_insert:
        best = max(limits.postgres_insert, key=lambda k: limits.postgres_insert[k])
        others = "; ".join(f"{k} {num(v)}" for k, v in limits.postgres_insert.items())
        rows.append(
            Row(
                f"PostgreSQL insert, 100 rows/tx ({best})",
                f"{num(limits.postgres_best)} rows/s",
                limit=others,
                section=section,
            )
        )
    for label, rate in limits.redis_pipeline.items():
        where = "embedded" if label == "embedded" else "--redis-url"
        rows.append(Row(f"Redis pipelined SET ({where})", f"{num(rate)}/s", section=section))
    if limits.http is not None:
        load = limits.http.load
        rows.append(
            Row(
                "bare Starlette + JSON ingest body",
                f"{num(load.rate)} events/s",
                limit=f"{num(load.requests / load.seconds)} req/s × 100; CPU: server "
                f"{load.server_cpu or 0:.0%}, load generator {load.client_cpu or 0:.0%}",
                section=section,
            )
        )
        if limits.http.rss_mb is not None:
            rows.append(
                Row("bare Starlette server RSS", f"{limits.http.rss_mb:.0f} MiB", section=section)
            )
    return rows


def ingest_rows(
    name: str,
    result: ingest.BackendResult | BaseException,
    limits: raw_limits.RawLimits | BaseException,
    settings: Settings,
) -> list[Row]:
    section = name
    target = ingest.TARGETS[name]
    figure = "ingest, batches of 100"
    if isinstance(result, BaseException):
        return [
            Row(figure, "-", f"≥ {num(target)}", failed(result), section=section),
            Row(
                "server RSS after ingest", "-", f"≤ {MB_TARGET} MB", failed(result), section=section
            ),
        ]
    api = result.api
    errors = sum(api.errors.values())
    verdict = verdict_at_least(api.rate, target, "/s")
    if errors:
        verdict += f"; {errors} failed requests"
    limit, ratio = "", ""
    if not isinstance(limits, BaseException):
        insert = limits.sqlite_insert if name == "SQLite" else limits.postgres_best
        bare = limits.http.load.rate if limits.http else 0.0
        limit = f"{name} insert {num(insert)} rows/s / bare HTTP {num(bare)} ev/s"
        ratio = " / ".join(f"{api.rate / x:.1%}" if x else "-" for x in (insert, bare))
    rows = [
        Row(
            figure,
            f"{num(api.rate)} events/s",
            f"≥ {num(target)}",
            verdict,
            limit,
            ratio,
            section,
        ),
        Row(
            "  ingest latency p50 / p99",
            f"{api.percentile(0.5):.0f} / {api.percentile(0.99):.0f} ms",
            limit=f"server {api.server_cpu or 0:.0%} of a core, load generator "
            f"{api.client_cpu or 0:.0%}",
            section=section,
        ),
    ]
    for label, rate in result.raw.items():
        rows.append(
            Row(
                f"  raw insert into its usage_events ({label})",
                f"{num(rate)} rows/s",
                limit="the app's table and indexes, after the run",
                ratio=f"{api.rate / rate:.1%}",
                section=section,
            )
        )
    events = api.total_events
    label = f"server RSS after {num(events)} events"
    if settings.quick:
        label += " (--quick)"
    elif events < RSS_EVENTS:
        label += f" (fewer than {num(RSS_EVENTS)}: load stopped on errors)"
    rss = result.rss_mb
    if rss is None:
        rows.append(Row(label, "-", f"≤ {MB_TARGET} MB", "no /proc", section=section))
    else:
        bare = None if isinstance(limits, BaseException) or not limits.http else limits.http.rss_mb
        rows.append(
            Row(
                label,
                f"{rss:.0f} MiB (peak {result.rss_peak_mb or 0:.0f}, start "
                f"{result.rss_start_mb or 0:.0f})",
                f"≤ {MB_TARGET} MB",
                verdict_at_most(rss * 1.048576, MB_TARGET, "MB"),
                f"bare Starlette server RSS {bare:.0f} MiB" if bare else "",
                f"{rss / bare:.1f}×" if bare else "",
                section,
            )
        )
    return rows


def draft_rows(
    name: str, results: list[draft_invoice.SizeResult] | BaseException, settings: Settings
) -> list[Row]:
    section = name
    target = f"p50 ≤ {draft_invoice.TARGET_P50_MS:.0f} ms"
    rows = []
    by_size = {} if isinstance(results, BaseException) else {r.events: r for r in results}
    for size in draft_invoice.SIZES:
        figure = f"draft invoice p50 / p95, {short(size)} events"
        if isinstance(results, BaseException):
            rows.append(Row(figure, "-", target, failed(results), section=section))
            continue
        r = by_size.get(size)
        if r is None:
            rows.append(Row(figure, "-", target, "skipped in --quick", section=section))
            continue
        rows.append(
            Row(
                figure,
                r.graphql.text(),
                target,
                verdict_at_most(r.graphql.p50, draft_invoice.TARGET_P50_MS, "ms"),
                f"raw SELECT of its {r.rows.get(2, 0):,} rows {r.raw_month.p50:.2f} ms",
                f"{r.graphql.p50 / r.raw_month.p50:.0f}×",
                section,
            )
        )
    figure = "draft invoice p50, 1M ÷ 10k"
    ratio_target = f"≤ {draft_invoice.TARGET_RATIO}"
    if isinstance(results, BaseException):
        rows.append(Row(figure, "-", ratio_target, failed(results), section=section))
    elif 10_000 in by_size and 1_000_000 in by_size:
        ratio = by_size[1_000_000].graphql.p50 / by_size[10_000].graphql.p50
        verdict = "met" if ratio <= draft_invoice.TARGET_RATIO else f"NOT MET: {ratio:.2f}"
        rows.append(Row(figure, f"{ratio:.2f}", ratio_target, verdict, section=section))
    else:
        biggest = max(by_size) if by_size else None
        value = "-"
        if biggest and biggest != 10_000 and 10_000 in by_size:
            value = (
                f"{biggest:,}/10k: {by_size[biggest].graphql.p50 / by_size[10_000].graphql.p50:.2f}"
            )
        skipped = "skipped in --quick" if settings.quick else "1M not loaded"
        rows.append(Row(figure, value, ratio_target, skipped, section=section))
    return rows


def alert_rows(
    name: str, figures: alert_latency.Figures | BaseException, plan: alert_latency.Plan
) -> list[Row]:
    section = name
    specs = (
        ("webhook", "ingest → webhook", alert_latency.RAW[0]),
        ("subscription", "ingest → subscription", alert_latency.RAW[1]),
    )
    rows = []
    if not isinstance(figures, BaseException):
        load = figures.load.get("rate", 0.0)
        rows.append(
            Row(
                "  background load during the probes",
                f"{num(load)} events/s",
                f"{num(plan.rate)} asked",
                "",
                f"{len(figures.webhook)} probes; "
                + ("worker in the API process" if plan.in_process else "a worker process")
                + ("" if load >= 0.95 * plan.rate else "; short of the ask: the server's ceiling"),
                section=section,
            )
        )
    for kind, label, raw in specs:
        target_s = alert_latency.TARGETS[kind]
        target = f"p99 ≤ {target_s * 1000:.0f} ms"
        if isinstance(figures, BaseException):
            rows.append(Row(f"{label} p50 / p99", "-", target, failed(figures), section=section))
            continue
        p50, p99 = figures.p(kind, 0.5), figures.p(kind, 0.99)
        raw_p50 = figures.raw_p50(raw)
        rows.append(
            Row(
                f"{label} p50 / p99",
                f"{p50:.0f} / {p99:.0f} ms",
                target,
                verdict_at_most(p99, target_s * 1000, "ms"),
                f"{raw} {raw_p50:.2f} ms",
                f"{p50 / raw_p50:.0f}× (p50)" if raw_p50 else "",
                section,
            )
        )
    return rows


def delivery_rows(name: str, result: deliveries.Result | BaseException) -> list[Row]:
    target = f"≥ {num(deliveries.TARGET)}/s"
    if isinstance(result, BaseException):
        return [Row("webhook deliveries/s", "-", target, failed(result), section=name)]
    verdict = verdict_at_least(result.rate, deliveries.TARGET, "/s")
    statuses = result.statuses
    if statuses.get("succeeded", 0) != result.plan.messages:
        verdict += f"; delivery rows {statuses}"
    return [
        Row(
            f"webhook deliveries, {deliveries.layout(result.plan)}",
            f"{num(result.rate)}/s",
            target,
            verdict,
            f"bare httpx POSTs to the receiver {num(result.raw_rate)}/s",
            f"{result.rate / result.raw_rate:.1%}" if result.raw_rate else "",
            name,
        )
    ]


# ----------------------------------------------------------------------------- output


COLUMNS = ("figure", "value", "target", "met?", "raw limit (same run)", "ratio")


def cells(row: Row) -> tuple[str, ...]:
    return (row.figure, row.value, row.target, row.verdict, row.limit, row.ratio)


def render(report: Report, total: float) -> None:
    out.print(f"[bold]Meterline benchmarks[/] — {report.started:%Y-%m-%d %H:%M} UTC")
    for line in report.header:
        out.print(line)
    table = Table(show_lines=False)
    for column in COLUMNS:
        table.add_column(column, overflow="fold")
    section = None
    for row in report.rows:
        if row.section != section:
            if section is not None:
                table.add_section()
            table.add_row(f"[bold]{row.section}[/]", *[""] * (len(COLUMNS) - 1))
            section = row.section
        style = (
            "green"
            if row.verdict == "met"
            else "red"
            if row.verdict.startswith(("NOT MET", "failed"))
            else None
        )
        values = list(cells(row))
        if style and row.verdict:
            values[3] = f"[{style}]{row.verdict}[/]"
        table.add_row(*values)
    out.print(table)
    parts = ", ".join(f"{k} {v:.0f} s" for k, v in report.durations.items())
    out.print(f"took {total:.0f} s ({parts})")
    for note in report.notes:
        out.print(f"[red]{note}[/]" if "failed" in note else note)


def markdown(report: Report, total: float) -> str:
    def escape(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        f"Run {report.started:%Y-%m-%d %H:%M} UTC, {total / 60:.1f} min.",
        "",
        *(f"- {line}" for line in report.header),
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    section = None
    for row in report.rows:
        if row.section != section:
            lines.append(f"| **{escape(row.section)}** |" + " |" * (len(COLUMNS) - 1))
            section = row.section
        lines.append("| " + " | ".join(escape(c) for c in cells(row)) + " |")
    lines += ["", "Parts: " + ", ".join(f"{k} {v:.0f} s" for k, v in report.durations.items())]
    lines += [f"- {note}" for note in report.notes]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="under 2 minutes; smaller sizes")
    parser.add_argument("--postgres-url", help="also run on PostgreSQL (needs --redis-url)")
    parser.add_argument("--redis-url", help="the Redis the PostgreSQL backend uses")
    parser.add_argument("--only", choices=("sqlite", "postgres"), help="run one backend")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    parser.add_argument("--profile", type=Path, help="py-spy the ingest server into DIR")
    return parser.parse_args()


def backends(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    chosen: list[tuple[str, str | None]] = [("SQLite", None)]
    if args.postgres_url and args.redis_url:
        chosen.append(("PostgreSQL", args.postgres_url))
    elif args.postgres_url or args.redis_url:
        log.print("[yellow]PostgreSQL needs both --postgres-url and --redis-url: skipped[/]")
    if args.only:
        chosen = [b for b in chosen if b[0].lower().startswith(args.only[:6])]
    return chosen


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    settings = Settings.make(args.quick, args.profile)
    chosen = backends(args)
    names = " + ".join(
        "SQLite + embedded Redis" if pg is None else "PostgreSQL + Redis" for _, pg in chosen
    )
    mode = "--quick (smaller sizes, fewer probes, shorter load)" if args.quick else "full"
    report = Report(datetime.now(UTC), [*machine(), f"mode: {mode}; backends: {names}"])
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="meterline-run-"))
    try:
        uses_pg = any(pg for _, pg in chosen)
        limits = timed(
            report,
            "raw limits",
            lambda: raw_limits.measure(
                workdir / "raw",
                seconds=settings.raw_seconds,
                http_seconds=settings.http_seconds,
                http_warmup=settings.http_warmup,
                clients=settings.clients,
                postgres_url=args.postgres_url if uses_pg else None,
                redis_url=args.redis_url if uses_pg else None,
            ),
        )
        report.rows += raw_rows(limits)
        for name, pg in chosen:
            report.rows += run_backend(
                report, settings, limits, workdir, name, pg, args.redis_url if pg else None
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    total = time.monotonic() - started
    render(report, total)
    if args.markdown:
        args.markdown.write_text(markdown(report, total))
        log.print(f"Markdown table written to {args.markdown}")


def run_backend(
    report: Report,
    settings: Settings,
    limits: raw_limits.RawLimits | BaseException,
    workdir: Path,
    name: str,
    pg: str | None,
    redis_url: str | None,
) -> list[Row]:
    """Every part on one backend, each in a directory of its own."""

    def part(kind: str, runner: Callable[..., T], plan: Any) -> T | BaseException:
        here = workdir / f"{kind}-{name.lower()}"
        here.mkdir(parents=True)
        try:
            return timed(report, f"{kind} {name}", lambda: runner(name, plan, here, pg, redis_url))
        finally:
            shutil.rmtree(here, ignore_errors=True)

    result = part("ingest", ingest.run_backend, settings.ingest)
    rows = ingest_rows(name, result, limits, settings)
    if settings.ingest.profile and not isinstance(result, BaseException):
        report.notes += profile_notes(settings.ingest.profile / f"ingest-{name.lower()}.txt")
    rows += draft_rows(name, part("drafts", draft_invoice.run_backend, settings.drafts), settings)
    # SQLite runs its zero-configuration layout, the worker inside the API process (as the
    # ingest part does); PostgreSQL the production one, separate worker processes.
    alerts = dataclasses.replace(settings.alerts, in_process=pg is None)
    rows += alert_rows(name, part("alerts", alert_latency.run_backend, alerts), alerts)
    sent = dataclasses.replace(settings.deliveries, in_process=pg is None)
    rows += delivery_rows(name, part("deliveries", deliveries.run_backend, sent))
    return rows


def profile_notes(collapsed: Path) -> list[str]:
    if not collapsed.exists():
        return [f"no profile at {collapsed}"]
    own, _ = top_frames(collapsed, 8)
    return [f"ingest profile, top frames (self): {f} {share:.0%}" for f, share in own]


if __name__ == "__main__":
    main()
