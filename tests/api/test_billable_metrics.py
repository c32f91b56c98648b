"""Billable metrics through GraphQL: create, validate, uniqueness, archive, isolation."""

from datetime import UTC, datetime
from decimal import Decimal

from models.store.audit import audit_page
from models.store.customers import create_customer
from models.store.metrics import active_metrics
from models.store.rollup_reads import window_partials
from tests.api.support import code_of, failure, gql
from tests.conftest import Env

CREATE = """
mutation($input: CreateBillableMetricInput!) {
  createBillableMetric(input: $input) {
    id name aggregationType aggregationKey groupKeys
    eventTypeFilter { inValues notInValues }
    propertyFilters { name exists }
  }
}"""
LIST = "query($all: Boolean!) { billableMetrics(includeArchived: $all) { id name archivedAt } }"
ARCHIVE = "mutation($id: ID!) { archiveBillableMetric(id: $id) { id archivedAt } }"
START, END = datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)
TOKENS = {
    "name": "Tokens",
    "aggregationType": "SUM",
    "aggregationKey": "tokens",
    "eventTypeFilter": {"inValues": ["llm"]},
    "propertyFilters": [{"name": "tokens", "exists": True}, {"name": "model", "exists": True}],
    "groupKeys": [["model"]],
}


async def test_create_then_list_then_archive(env: Env) -> None:
    created = (await gql(env, CREATE, env.admin_key, input=TOKENS))["data"]["createBillableMetric"]
    assert created["aggregationType"] == "SUM" and created["groupKeys"] == [["model"]]
    assert created["eventTypeFilter"] == {"inValues": ["llm"], "notInValues": None}
    listed = (await gql(env, LIST, env.read_key, all=False))["data"]["billableMetrics"]
    assert [m["id"] for m in listed] == [created["id"]]
    archived = await gql(env, ARCHIVE, env.admin_key, id=created["id"])
    assert archived["data"]["archiveBillableMetric"]["archivedAt"]
    assert (await gql(env, LIST, env.read_key, all=False))["data"]["billableMetrics"] == []
    assert len((await gql(env, LIST, env.read_key, all=True))["data"]["billableMetrics"]) == 1
    assert await code_of(env, ARCHIVE, env.admin_key, id=created["id"]) == "NOT_FOUND"


async def test_validation_errors_name_the_field(env: Env) -> None:
    bad = {**TOKENS, "propertyFilters": [{"name": "model", "exists": True}]}
    extensions = await failure(env, CREATE, env.admin_key, input=bad)
    assert extensions == {"code": "VALIDATION", "field": "aggregation_key"}
    assert (await gql(env, LIST, env.read_key, all=True))["data"]["billableMetrics"] == []


async def test_a_uniqueness_key_creates_once(env: Env) -> None:
    keyed = {**TOKENS, "uniquenessKey": "tokens-v1"}
    assert "errors" not in await gql(env, CREATE, env.admin_key, input=keyed)
    assert await code_of(env, CREATE, env.admin_key, input=keyed) == "CONFLICT"
    assert len((await gql(env, LIST, env.read_key, all=True))["data"]["billableMetrics"]) == 1


async def test_read_and_ingest_keys_cannot_create(env: Env) -> None:
    assert await code_of(env, CREATE, env.read_key, input=TOKENS) == "FORBIDDEN"
    assert await code_of(env, CREATE, env.ingest_key, input=TOKENS) == "FORBIDDEN"


async def test_another_organization_neither_sees_nor_archives(env: Env) -> None:
    created = (await gql(env, CREATE, env.admin_key, input=TOKENS))["data"]["createBillableMetric"]
    _, other_key = await env.new_org("Other")
    assert (await gql(env, LIST, other_key, all=True))["data"]["billableMetrics"] == []
    assert await code_of(env, ARCHIVE, other_key, id=created["id"]) == "NOT_FOUND"


async def test_creation_back_fills_stored_events_and_is_audited(env: Env) -> None:
    async with env.write() as conn:
        customer_id = await create_customer(
            conn, env.org_id, "C", env.clock(), ingest_aliases=["c"]
        )
    event = {
        "transaction_id": "e1",
        "customer_id": "c",
        "event_type": "llm",
        "timestamp": "2026-04-10T11:00:00Z",
        "properties": {"tokens": 7, "model": "m"},
    }
    assert (await env.ingest([event])).json()["accepted"] == 1
    created = (await gql(env, CREATE, env.admin_key, input=TOKENS))["data"]["createBillableMetric"]
    await env.run_jobs()
    async with env.read() as conn:
        ((_, entry),), _ = await audit_page(conn, env.org_id, 10, None)
        (metric,) = await active_metrics(conn, env.org_id)
        usage = await window_partials(conn, env.org_id, customer_id, [metric], START, END)
    ((group, partial),) = usage[created["id"]]
    assert (group, partial.count, partial.sum) == ((("model", "m"),), 1, Decimal(7))
    assert (entry.action, entry.object_id) == ("createBillableMetric", created["id"])
    assert entry.changes["aggregation_key"] == "tokens"
