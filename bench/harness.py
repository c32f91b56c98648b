"""What the benchmarks share: processes (the ``meterline`` CLI, a uvicorn server), the
ingest load generator, reading CPU and RSS from ``/proc``, and py-spy profiles.

The load generator is the one every HTTP figure uses (``bench/ingest.py``, the bare
endpoint of ``bench/raw_limits.py``, the background load of ``bench/alert_latency.py``):
``clients`` keep-alive ``httpx.AsyncClient`` connections in one process posting bodies of
100 events with unique transaction ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
from rich.console import Console

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BATCH = 100
REGIONS = ("eu-west", "us-east", "us-west", "ap-south")
USERS = 1_000
SPREAD = timedelta(hours=6)
METERLINE = [sys.executable, "-m", "meterline.cli"]
UVICORN = [sys.executable, "-m", "uvicorn", "meterline.app:create_app", "--factory"]
BARE_UVICORN = [sys.executable, "-m", "uvicorn", "bare_app:app", "--app-dir", str(BENCH)]
EXPLAINS = ("Error", "Exception:", "HINT", "[SQL:", "locked")
SERVER_PROBLEMS = ("Traceback", "database is locked", '" 500', "Exception", "ERROR")

log = Console(stderr=True, highlight=False, soft_wrap=True)


# ----------------------------------------------------------------------------- processes


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any Meterline configuration, plus ``extra``; the repository
    root on ``PYTHONPATH`` so that a clone works without ``pip install -e``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("METERLINE_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def meterline(args: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [*METERLINE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"meterline {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux ``/proc``), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def memory_mb(pid: int) -> tuple[float, float] | None:
    """(resident set, its peak) of a process in MiB, from ``/proc/PID/status``."""
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    values = {}
    for line in status:
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    if len(values) != 2:
        return None
    return values["VmRSS"], values["VmHWM"]


def stop(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM (uvicorn's graceful shutdown runs the lifespan), then SIGKILL its group."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def server(
    env: dict[str, str],
    workdir: Path,
    command: list[str] = UVICORN,
    log_name: str = "server.log",
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A uvicorn process (the app by default), ready (``/readyz`` is 200) when entered."""
    port = free_port()
    log_path = workdir / log_name
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=workdir,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the server never became ready:\n{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.2)
        yield process, base
    finally:
        stop(process)


def scan_server_log(path: Path) -> tuple[Counter[str], list[str]]:
    """Problem lines counted by kind, and the first traceback (or problem lines) in full."""
    problems: Counter[str] = Counter()
    sample: list[str] = []
    lines = path.read_text(errors="replace").splitlines()
    for n, line in enumerate(lines):
        hits = [p for p in SERVER_PROBLEMS if p in line]
        for hit in hits:
            problems[hit] += 1
        if hits and not sample:
            block = lines[n : n + 400]
            end = next((i for i, x in enumerate(block[1:], 1) if x.startswith("INFO:")), None)
            sample = [x[:300] for x in block[:end] if any(w in x for w in EXPLAINS)][:12]
    return problems, sample


# ----------------------------------------------------------------------------- profiles


@contextlib.contextmanager
def py_spy(pid: int, seconds: float, output: Path | None) -> Iterator[None]:
    """``py-spy record`` of ``pid`` while the block runs: a flame graph at ``output`` and
    the collapsed stacks beside it (``.txt``, read by :func:`top_frames`)."""
    if output is None or shutil.which("py-spy") is None:
        if output is not None:
            log.print("[yellow]py-spy is not installed (pip install py-spy): no profile[/]")
        yield
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    command = ["py-spy", "record", "--pid", str(pid), "--duration", str(int(seconds))]
    recorders = [
        subprocess.Popen(
            [*command, "--nonblocking", "--format", fmt, "--output", str(target)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for fmt, target in (("flamegraph", output), ("raw", output.with_suffix(".txt")))
    ]
    try:
        yield
    finally:
        for recorder in recorders:
            try:
                recorder.wait(30)
            except subprocess.TimeoutExpired:
                recorder.kill()
                recorder.wait()
        log.print(f"profile written to {output} (flame graph) and .txt (collapsed stacks)")


def top_frames(
    collapsed: Path, n: int = 15
) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """From py-spy's collapsed stacks: the ``n`` frames with the most samples on top of the
    stack (self) and anywhere in it (inclusive), as shares of all samples."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f.split(" (", 1)[0] + _where(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            anywhere[frame] += count
    if not total:
        return [], []
    return (
        [(f, c / total) for f, c in own.most_common(n)],
        [(f, c / total) for f, c in anywhere.most_common(n)],
    )


def _where(frame: str) -> str:
    """`` (module.py)`` of a py-spy frame ``name (path/module.py:line)``."""
    if " (" not in frame:
        return ""
    path = frame.split(" (", 1)[1].rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    return f" ({'/'.join(parts[-2:])})"


# ----------------------------------------------------------------------------- load


class Batches:
    """Bodies of 100 events: unique transaction ids, a handful of customers and groups."""

    def __init__(self, refs: list[str]) -> None:
        now = datetime.now(UTC).replace(microsecond=0)
        step = SPREAD / 3600
        self.timestamps = [
            (now - SPREAD + step * i).strftime("%Y-%m-%dT%H:%M:%SZ") for i in range(3600)
        ]
        self.refs = refs
        self.run = secrets.token_hex(4)
        self.users = [f"user-{n}" for n in range(USERS)]

    def body(self, client: int, seq: int) -> bytes:
        choice, randint = random.choice, random.randint
        prefix = f"{self.run}-{client}-{seq}-"
        return orjson.dumps(
            [
                {
                    "transaction_id": f"{prefix}{i}",
                    "customer_id": choice(self.refs),
                    "event_type": "request",
                    "timestamp": choice(self.timestamps),
                    "properties": {
                        "region": choice(REGIONS),
                        "bytes": randint(1, 100_000),
                        "user_id": choice(self.users),
                    },
                }
                for i in range(BATCH)
            ]
        )


def judge(response: httpx.Response) -> str | None:
    """None if the batch was fully accepted, else a short error label."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    report = response.json()
    if report.get("accepted") != BATCH:
        return f"accepted {report.get('accepted')} of {BATCH}"
    if report.get("warnings") or report.get("rejected") or report.get("duplicates"):
        return "warnings/rejections in report"
    return None


@dataclass
class LoadResult:
    seconds: float = 0.0
    requests: int = 0
    events: int = 0
    total_events: int = 0  # accepted over the whole run: warm-up, window and any fill
    latencies: list[float] = field(default_factory=list)
    per_second: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    server_cpu: float | None = None
    client_cpu: float | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def slowest_second(self) -> int:
        slices = [self.per_second.get(s, 0) for s in range(int(self.seconds))]
        return min(slices) if slices else 0


async def run_load(
    base: str,
    key: str,
    refs: list[str],
    *,
    seconds: float,
    warmup: float,
    clients: int,
    pid: int,
    fill_to: int = 0,
) -> LoadResult:
    """``clients`` connections posting batches as fast as answered: requests completing in
    the window (after ``warmup``, ``seconds`` long) are the figure; then, if ``fill_to``,
    posting goes on until that many events were accepted in all (for the RSS figure)."""
    batches = Batches(refs)
    result = LoadResult()
    start = time.monotonic()
    window_start = start + warmup
    window_end = window_start + seconds
    marks: dict[str, tuple[float | None, float]] = {}

    async def mark(name: str, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        marks[name] = (cpu_seconds(pid), time.process_time())

    def going() -> bool:
        if time.monotonic() < window_end:
            return True
        return result.total_events < fill_to and sum(result.errors.values()) < 1000

    async def client(n: int) -> None:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(
            base_url=base, headers=headers, limits=limits, timeout=60
        ) as http:
            seq = 0
            while going():
                body = batches.body(n, seq)
                seq += 1
                sent = time.monotonic()
                try:
                    error = judge(await http.post("/v1/ingest", content=body))
                except httpx.HTTPError as failure:
                    error = type(failure).__name__
                done = time.monotonic()
                if error is not None:
                    result.errors[error] += 1
                    continue
                result.total_events += BATCH
                if window_start <= done < window_end:
                    result.requests += 1
                    result.events += BATCH
                    result.latencies.append(done - sent)
                    result.per_second[int(done - window_start)] += BATCH

    async def progress() -> None:
        if not fill_to:
            return
        await asyncio.sleep(max(0.0, window_end - time.monotonic()))
        said = 0.0
        while result.total_events < fill_to:
            if time.monotonic() - said >= 30:
                log.print(f"  … {result.total_events:,} of {fill_to:,} events accepted")
                said = time.monotonic()
            await asyncio.sleep(0.5)

    await asyncio.gather(
        mark("start", window_start),
        mark("end", window_end),
        progress(),
        *(client(n) for n in range(clients)),
    )
    result.seconds = seconds
    (server_a, client_a), (server_b, client_b) = marks["start"], marks["end"]
    if server_a is not None and server_b is not None:
        result.server_cpu = (server_b - server_a) / seconds
    result.client_cpu = (client_b - client_a) / seconds
    return result
