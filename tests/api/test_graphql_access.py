from tests.api.support import ANONYMOUS, gql, post
from tests.conftest import Env

QUERY = "{ organization { id name } }"


async def test_organization_is_the_callers_own(env: Env) -> None:
    other_org, other_key = await env.new_org("Other")
    mine = await gql(env, QUERY, env.read_key)
    theirs = await gql(env, QUERY, other_key)
    assert mine["data"]["organization"] == {"id": env.org_id, "name": "Acme"}
    assert theirs["data"]["organization"] == {"id": other_org, "name": "Other"}


async def test_missing_or_bad_credentials_are_unauthenticated(env: Env) -> None:
    for key in (ANONYMOUS, "ml_live_nope", "garbage"):
        body = await gql(env, QUERY, key)
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_ingest_only_keys_cannot_query(env: Env) -> None:
    body = await gql(env, QUERY, env.ingest_key)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_over_deep_and_malformed_queries_are_errors_not_500(env: Env) -> None:
    deep = "{ organization " + "{ id " * 20 + "}" * 21
    for query in (deep, "{ organization { id ", "{ nope }"):
        response = await post(env, query, env.read_key)
        assert response.status_code < 500
        assert response.json()["errors"]
