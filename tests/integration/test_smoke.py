from tests.conftest import Env


async def test_ready_and_ingest_roundtrip(env: Env) -> None:
    assert (await env.client.get("/readyz")).json()["status"] == "ok"
    response = await env.ingest(
        [
            {
                "transaction_id": "a",
                "customer_id": "x",
                "event_type": "t",
                "timestamp": "2026-04-10T11:00:00Z",
                "properties": {"n": 0.1},
            }
        ]
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
