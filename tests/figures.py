"""Figures the fault and fuzz tests report, printed at the end of the run.

A test calls ``record("ingest, server killed [postgres]", sent=…, acknowledged=…,
stored=…, lost=0)``; counts of the same section and name add up. Under xdist each worker
hands its figures to the controller (``workeroutput``), which prints them all.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import pytest

_figures: defaultdict[str, dict[str, int]] = defaultdict(dict)
WORKER_KEY = "meterline_figures"


def record(section: str, **counts: int) -> None:
    """Add ``counts`` to the figures of ``section`` (a line of the end-of-run table)."""
    figures = _figures[section]
    for name, count in counts.items():
        figures[name] = figures.get(name, 0) + count


def _merge(found: dict[str, dict[str, int]]) -> None:
    for section, counts in found.items():
        record(section, **counts)


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput: dict[str, Any] | None = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller prints
        workeroutput[WORKER_KEY] = json.dumps(_figures)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    found = getattr(node, "workeroutput", {}).get(WORKER_KEY)
    if found:
        _merge(json.loads(found))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _figures:
        return
    terminalreporter.section("fault and fuzz figures")
    for section in sorted(_figures):
        counts = ", ".join(f"{name} {count:,}" for name, count in _figures[section].items())
        terminalreporter.write_line(f"{section}: {counts}")
