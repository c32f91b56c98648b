"""Settings an operator sets in the environment reach the parts they tune."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from meterline.settings import Settings


def test_webhook_concurrency_and_batch_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("METERLINE_WEBHOOK_CONCURRENCY", "4")
    monkeypatch.setenv("METERLINE_WEBHOOK_BATCH", "25")
    policy = Settings(_env_file=None).webhook_policy()  # type: ignore[call-arg]
    assert (policy.concurrency, policy.batch) == (4, 25)


@pytest.mark.parametrize("name", ["METERLINE_WEBHOOK_CONCURRENCY", "METERLINE_WEBHOOK_BATCH"])
def test_a_webhook_concurrency_or_batch_below_one_is_refused(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "0")
    with pytest.raises(ValidationError, match=name.removeprefix("METERLINE_").lower()):
        Settings(_env_file=None)  # type: ignore[call-arg]
