"""A memo of the purchases' aggregates per user and calendar month, so a nightly run aggregates
again only the months whose purchases changed instead of every purchase.

Both tables are UNLOGGED: they are derived data, and after a crash PostgreSQL empties both
together, which only makes the next run aggregate everything again.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mlm_purchase_months",
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("month", sa.Date, nullable=False),
        sa.Column("volume_cents", sa.BigInteger, nullable=False),
        sa.Column("candidate_at_us", sa.BigInteger),
        sa.Column("candidate_id", sa.BigInteger),
        prefixes=["UNLOGGED"],
    )
    op.create_table(
        "mlm_purchase_month_sums",
        sa.Column("month", sa.Date, primary_key=True),
        sa.Column("purchases", sa.BigInteger, nullable=False),
        sa.Column("checksum", sa.BigInteger),
        sa.Column("candidate_min_cents", sa.BigInteger, nullable=False),
        prefixes=["UNLOGGED"],
    )


def downgrade() -> None:
    op.drop_table("mlm_purchase_month_sums")
    op.drop_table("mlm_purchase_months")
