"""The house rules CI enforces: lint, format, types, and imports pointing one way."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "command",
    [
        ("ruff", "check", "."),
        ("ruff", "format", "--check", "."),
        (sys.executable, "-m", "mypy"),
        ("lint-imports",),
    ],
    ids=["ruff-check", "ruff-format", "mypy", "import-linter"],
)
def test_tool_passes(command: tuple[str, ...]) -> None:
    result = run(*command)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def test_billing_core_has_no_float_and_reads_no_clock() -> None:
    offenders = []
    for path in (ROOT / "billing").rglob("*.py"):
        text = path.read_text()
        for pattern in (r"\bfloat\b", r"datetime\.now", r"utcnow", r"time\.time\(", r"date\.today"):
            if re.search(pattern, text):
                offenders.append(f"{path.name}: {pattern}")
    assert offenders == []


def test_billing_core_branch_coverage_is_at_least_95_percent() -> None:
    result = run(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-n",
        "0",  # one process: the suite's workers already use the cores
        "tests/unit",
        "--cov=billing",
        "--cov-branch",
        "--cov-fail-under=95",
        "--cov-report=term",
    )
    assert result.returncode == 0, result.stdout[-3000:]
