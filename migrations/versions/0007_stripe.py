"""Stripe: organization settings, the push of each finalized invoice (with its payment
status there), the Stripe events handled

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21 09:57:06.893438
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stripe_events",
        sa.Column("org_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("received_at", models.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
        ),
        sa.PrimaryKeyConstraint("org_id", "event_id"),
    )
    op.create_table(
        "stripe_settings",
        sa.Column("org_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("secret_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("webhook_secret", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("api_base", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("send_zero_total", sa.Boolean(), nullable=False),
        sa.Column("updated_at", models.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
        ),
        sa.PrimaryKeyConstraint("org_id"),
    )
    op.create_table(
        "invoice_syncs",
        sa.Column("invoice_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("org_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("days_until_due", sa.Integer(), nullable=False),
        sa.Column(
            "stripe_customer_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True
        ),
        sa.Column("collection_method", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("key_generation", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("payment_status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("stripe_invoice_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("stripe_total", sa.BigInteger(), nullable=True),
        sa.Column("total_mismatch", sa.Boolean(), nullable=False),
        sa.Column("void_requested", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", models.types.UTCDateTime(), nullable=True),
        sa.Column("leased_until", models.types.UTCDateTime(), nullable=True),
        sa.Column("lease_token", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("created_at", models.types.UTCDateTime(), nullable=False),
        sa.Column("synced_at", models.types.UTCDateTime(), nullable=True),
        sa.Column("updated_at", models.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
        ),
        sa.PrimaryKeyConstraint("invoice_id"),
    )
    with op.batch_alter_table("invoice_syncs", schema=None) as batch_op:
        batch_op.create_index("ix_invoice_syncs_due", ["next_attempt_at"], unique=False)
        batch_op.create_index(
            "ix_invoice_syncs_stripe", ["org_id", "stripe_invoice_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("invoice_syncs", schema=None) as batch_op:
        batch_op.drop_index("ix_invoice_syncs_stripe")
        batch_op.drop_index("ix_invoice_syncs_due")

    op.drop_table("invoice_syncs")
    op.drop_table("stripe_settings")
    op.drop_table("stripe_events")
