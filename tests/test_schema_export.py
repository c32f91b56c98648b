from pathlib import Path

from resolvers.graphql.app import schema_sdl

COMMITTED = Path(__file__).resolve().parents[1] / "schema" / "schema.graphql"


def test_committed_schema_is_current() -> None:
    assert COMMITTED.read_text() == schema_sdl(), "run `meterline export-schema` and commit it"
