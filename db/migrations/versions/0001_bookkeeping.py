"""The project's bookkeeping: runs ledger, period snapshots and closes, validation failures.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mlm_runs",
        sa.Column("run_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("mode", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("plan_version", sa.String(100), nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("max_purchase_id", sa.BigInteger),
        sa.Column("purchase_count", sa.BigInteger),
        sa.Column("user_count", sa.BigInteger),
        sa.Column("users_changed", sa.BigInteger),
        sa.Column("verified", sa.Boolean),
        sa.Column("summary", pg.JSONB),
        sa.Column("error", sa.Text),
    )
    op.create_table(
        "mlm_period_snapshots",
        sa.Column("period", sa.String(7), primary_key=True),
        sa.Column("user_id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.BigInteger, nullable=False),
        sa.Column("is_final", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("personal_volume_total", sa.Numeric(15, 2), nullable=False),
        sa.Column("monthly_pv", sa.Numeric(15, 2), nullable=False),
        sa.Column("full_volume", sa.Numeric(15, 2), nullable=False),
        sa.Column("qualifying_volume", sa.Numeric(15, 2), nullable=False),
        sa.Column("active_partners", sa.Integer, nullable=False),
        sa.Column("direct_referrals", sa.Integer, nullable=False),
        sa.Column("is_active", sa.Boolean, nullable=False),
        sa.Column("last_active_month", sa.String(7)),
        sa.Column("qualified_rank", sa.String(50), nullable=False),
        sa.Column("rank", sa.String(50), nullable=False),
    )
    op.create_table(
        "mlm_periods",
        sa.Column("period", sa.String(7), primary_key=True),
        sa.Column("is_closed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.Column("close_run_id", sa.BigInteger),
        sa.Column("input_fingerprint", sa.String(64)),
    )
    op.create_table(
        "mlm_period_events",
        sa.Column("event_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("event", sa.String(20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("actor", sa.String(200)),
        sa.Column("reason", sa.Text),
        sa.Column("run_id", sa.BigInteger),
    )
    op.create_index("ix_mlm_period_events_period", "mlm_period_events", ["period"])
    op.create_table(
        "mlm_validation_failures",
        sa.Column("failure_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("run_id", sa.BigInteger, nullable=False),
        sa.Column("user_id", sa.Integer),
        sa.Column("check_name", sa.String(100), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_mlm_validation_failures_run_id", "mlm_validation_failures", ["run_id"])


def downgrade() -> None:
    for table in ("mlm_validation_failures", "mlm_period_events", "mlm_periods", "mlm_period_snapshots", "mlm_runs"):
        op.drop_table(table)
