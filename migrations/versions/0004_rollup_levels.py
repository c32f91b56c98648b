"""Rollup levels: hour, UTC day and UTC calendar month rows in the same tables

Revision ID: 0004_rollup_levels
Revises: 0003
Create Date: 2026-11-21 06:40:00.000000

``usage_rollups`` and ``usage_distinct`` get a ``grain`` column in their primary key
(0 hour, 1 day, 2 month). Existing rows are hourly; their day and month rows are computed
here from them, so a database upgraded with data reads the same as one filled after.
"""

import warnings
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_rollup_levels"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLLUP_KEY = ["org_id", "customer_id", "metric_id", "bucket", "group_hash"]
DISTINCT_KEY = [*ROLLUP_KEY, "value_hash"]
TABLES = {"usage_rollups": ROLLUP_KEY, "usage_distinct": DISTINCT_KEY}


def _with_grain(key: list[str]) -> list[str]:
    return [*key[:3], "grain", *key[3:]]


def _set_primary_key(table: str, columns: list[str], sqlite: bool) -> None:
    if sqlite:
        # SQLite cannot alter a primary key: batch mode copies the table, grain included
        # (SQLAlchemy warns that the new key differs from the columns' reflected flags)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*as primary_key=True, not matching")
            with op.batch_alter_table(table, recreate="always") as batch_op:
                if "grain" in columns:
                    batch_op.alter_column("grain", server_default=None)
                batch_op.create_primary_key(f"{table}_pkey", columns)
    else:
        op.drop_constraint(f"{table}_pkey", table, type_="primary")
        op.create_primary_key(f"{table}_pkey", table, columns)


def _bucket_of(grain: int, sqlite: bool) -> str:
    """SQL for the day (1) or month (2) bucket holding the hourly ``bucket``."""
    if sqlite:  # SQLAlchemy stores 'YYYY-MM-DD HH:MM:SS.ffffff'
        return (
            "substr(bucket, 1, 10) || ' 00:00:00.000000'"
            if grain == 1
            else "substr(bucket, 1, 7) || '-01 00:00:00.000000'"
        )
    return f"date_trunc('{'day' if grain == 1 else 'month'}', bucket)"


def _fill_coarse_levels(sqlite: bool) -> None:
    dec_sum, dec_max = ("dec_sum", "dec_max_agg") if sqlite else ("sum", "max")
    tx_order = "latest_tx" if sqlite else 'latest_tx COLLATE "C"'
    for grain in (1, 2):
        coarse = _bucket_of(grain, sqlite)
        op.execute(
            f"""
            INSERT INTO usage_rollups (org_id, customer_id, metric_id, grain, bucket,
                group_hash, group_json, count, sum, max, latest_ts_us, latest_tx, latest_value)
            SELECT org_id, customer_id, metric_id, {grain}, coarse, group_hash,
                MIN(group_json), SUM(count), {dec_sum}(sum), {dec_max}(max),
                MAX(CASE WHEN rank = 1 THEN latest_ts_us END),
                MAX(CASE WHEN rank = 1 THEN latest_tx END),
                MAX(CASE WHEN rank = 1 THEN latest_value END)
            FROM (
                SELECT *, {coarse} AS coarse, row_number() OVER (
                    PARTITION BY org_id, customer_id, metric_id, {coarse}, group_hash
                    ORDER BY CASE WHEN latest_ts_us IS NULL THEN 1 ELSE 0 END,
                        latest_ts_us DESC, {tx_order} DESC
                ) AS rank
                FROM usage_rollups WHERE grain = 0
            ) AS hourly
            GROUP BY org_id, customer_id, metric_id, coarse, group_hash
            """
        )
        op.execute(
            f"""
            INSERT INTO usage_distinct (org_id, customer_id, metric_id, grain, bucket,
                group_hash, value_hash, group_json, value)
            SELECT org_id, customer_id, metric_id, {grain}, {coarse}, group_hash, value_hash,
                MIN(group_json), MIN(value)
            FROM usage_distinct WHERE grain = 0
            GROUP BY org_id, customer_id, metric_id, {coarse}, group_hash, value_hash
            """
        )


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, key in TABLES.items():
        op.add_column(
            table, sa.Column("grain", sa.SmallInteger(), nullable=False, server_default="0")
        )
        if not sqlite:
            op.alter_column(table, "grain", server_default=None)
        _set_primary_key(table, _with_grain(key), sqlite)
    _fill_coarse_levels(sqlite)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, key in TABLES.items():
        op.execute(f"DELETE FROM {table} WHERE grain <> 0")
        _set_primary_key(table, key, sqlite)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("grain")
