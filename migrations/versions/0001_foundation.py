"""Foundation: organizations, API keys, customers, metrics, usage events and rollups

Revision ID: 0001
Revises:
Create Date: 2026-11-21 05:42:45.509628
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_dedupe",
        sa.Column("org_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("transaction_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("received_at", models.types.UTCDateTime(), nullable=False),
        sa.Column("duplicate_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "transaction_id"),
    )
    with op.batch_alter_table("event_dedupe", schema=None) as batch_op:
        batch_op.create_index("ix_event_dedupe_received", ["received_at"], unique=False)

    op.create_table(
        "organizations",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("grace_period_seconds", sa.Integer(), nullable=True),
        sa.Column("created_at", models.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "usage_distinct",
        sa.Column("org_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("metric_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("bucket", models.types.UTCDateTime(), nullable=False),
        sa.Column("group_hash", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("value_hash", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("group_json", sa.Text(), nullable=False),
        sa.Column("value", sqlmodel.sql.sqltypes.AutoString(length=4096), nullable=False),
        sa.PrimaryKeyConstraint(
            "org_id", "customer_id", "metric_id", "bucket", "group_hash", "value_hash"
        ),
    )
    op.create_table(
        "usage_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("transaction_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("customer_ref", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("event_type", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("timestamp", models.types.UTCDateTime(), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("received_at", models.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_usage_events_customer_ts", ["org_id", "customer_id", "timestamp"], unique=False
        )
        batch_op.create_index("ix_usage_events_ref", ["org_id", "customer_ref"], unique=False)
        batch_op.create_index("ix_usage_events_tx", ["org_id", "transaction_id"], unique=False)

    op.create_table(
        "usage_rollups",
        sa.Column("org_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("metric_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("bucket", models.types.UTCDateTime(), nullable=False),
        sa.Column("group_hash", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("group_json", sa.Text(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("sum", models.types.ExactDecimal(), nullable=False),
        sa.Column("max", models.types.ExactDecimal(), nullable=True),
        sa.Column("latest_ts_us", sa.BigInteger(), nullable=True),
        sa.Column("latest_tx", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("latest_value", models.types.ExactDecimal(), nullable=True),
        sa.PrimaryKeyConstraint("org_id", "customer_id", "metric_id", "bucket", "group_hash"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("org_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("display_prefix", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("key_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", models.types.UTCDateTime(), nullable=False),
        sa.Column("last_used_at", models.types.UTCDateTime(), nullable=True),
        sa.Column("revoked_at", models.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index("ix_api_keys_org", ["org_id"], unique=False)

    op.create_table(
        "billable_metrics",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("org_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("created_at", models.types.UTCDateTime(), nullable=False),
        sa.Column("archived_at", models.types.UTCDateTime(), nullable=True),
        sa.Column("backfill_watermark", sa.BigInteger(), nullable=False),
        sa.Column("backfilled_at", models.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("billable_metrics", schema=None) as batch_op:
        batch_op.create_index("ix_metrics_org", ["org_id", "created_at"], unique=False)

    op.create_table(
        "customers",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("org_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("custom_fields", sa.JSON(), nullable=True),
        sa.Column(
            "stripe_customer_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True
        ),
        sa.Column(
            "stripe_collection_method", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True
        ),
        sa.Column("created_at", models.types.UTCDateTime(), nullable=False),
        sa.Column("archived_at", models.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.create_index("ix_customers_org", ["org_id", "created_at"], unique=False)

    op.create_table(
        "customer_ingest_keys",
        sa.Column("org_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("is_alias", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
        ),
        sa.PrimaryKeyConstraint("org_id", "key"),
    )
    with op.batch_alter_table("customer_ingest_keys", schema=None) as batch_op:
        batch_op.create_index("ix_ingest_keys_customer", ["customer_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("customer_ingest_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_ingest_keys_customer")

    op.drop_table("customer_ingest_keys")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index("ix_customers_org")

    op.drop_table("customers")
    with op.batch_alter_table("billable_metrics", schema=None) as batch_op:
        batch_op.drop_index("ix_metrics_org")

    op.drop_table("billable_metrics")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_api_keys_org")

    op.drop_table("api_keys")
    op.drop_table("usage_rollups")
    with op.batch_alter_table("usage_events", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_events_tx")
        batch_op.drop_index("ix_usage_events_ref")
        batch_op.drop_index("ix_usage_events_customer_ts")

    op.drop_table("usage_events")
    op.drop_table("usage_distinct")
    op.drop_table("organizations")
    with op.batch_alter_table("event_dedupe", schema=None) as batch_op:
        batch_op.drop_index("ix_event_dedupe_received")

    op.drop_table("event_dedupe")
