"""Offset notification rules through GraphQL (SPEC §8): create, list, archive, validation.
When they fire is tested in test_lifecycle.py."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.api.support import NOW, code, data, failure, gql
from tests.api.worker_support import ARCHIVE_RULE, CREATE_RULE, RULES
from tests.conftest import START, Env


async def test_offset_rules_are_created_listed_and_archived(env: Env) -> None:
    week = {"name": "a week before the end", "trigger": "CONTRACT_ENDED", "offset": "-P7D"}
    created = (await data(env, CREATE_RULE, input=week))["createOffsetRule"]
    assert {k: v for k, v in created.items() if k != "id"} == {**week, "createdAt": NOW}
    env.clock.set(START + timedelta(minutes=1))
    later = {"name": "later", "trigger": "CREDIT_SEGMENT_STARTED", "offset": "PT2H"}
    second = (await data(env, CREATE_RULE, input=later))["createOffsetRule"]
    listed = (await data(env, RULES, env.read_key))["offsetRules"]
    assert listed == [created, second]

    archived = (await data(env, ARCHIVE_RULE, id=created["id"]))["archiveOffsetRule"]
    assert archived == created
    assert (await data(env, RULES))["offsetRules"] == [second]
    assert code(await gql(env, ARCHIVE_RULE, id=created["id"])) == "NOT_FOUND"


@pytest.mark.parametrize("offset", ["7 days", "P", "", "-7D", "P1.5D"])
async def test_an_offset_must_be_a_signed_iso_duration(env: Env, offset: str) -> None:
    rule = {"name": "bad", "trigger": "CONTRACT_STARTED", "offset": offset}
    assert await failure(env, CREATE_RULE, alone=True, input=rule) == {
        "code": "VALIDATION",
        "field": "offset",
    }
    assert (await data(env, RULES))["offsetRules"] == []


async def test_an_offset_rule_needs_a_name_and_a_known_trigger(env: Env) -> None:
    nameless = {"name": " ", "trigger": "CONTRACT_STARTED", "offset": "P1D"}
    assert await failure(env, CREATE_RULE, input=nameless) == {
        "code": "VALIDATION",
        "field": "name",
    }
    unknown = {"name": "x", "trigger": "INVOICE_FINALIZED", "offset": "P1D"}
    assert (await gql(env, CREATE_RULE, input=unknown))["errors"]
    keyed = {"name": "x", "trigger": "CONTRACT_STARTED", "offset": "P1D", "uniquenessKey": "k"}
    await data(env, CREATE_RULE, input=keyed)
    assert await failure(env, CREATE_RULE, input=keyed) == {
        "code": "CONFLICT",
        "field": "uniqueness_key",
    }
