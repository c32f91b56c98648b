from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from models.tables import metadata
from tests.conftest import Env


async def test_migrations_build_exactly_the_models(env: Env) -> None:
    def diff(sync_conn: object) -> list:
        context = MigrationContext.configure(sync_conn, opts={"compare_type": False})
        return compare_metadata(context, metadata)

    async with env.read() as conn:
        changes = await conn.run_sync(diff)
    assert changes == []
