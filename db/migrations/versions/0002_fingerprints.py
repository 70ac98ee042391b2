"""Fingerprints that let a run skip users whose stored and computed values have not moved.

``mlm_user_fingerprints``: per user, the row version (``xmin``) of the users row right after
the last run that compared it, and a hash of what that run computed. A later run stages a user
only when the row was written since (by anyone) or the computed values moved. ``mlm_period_snapshots.fingerprint``: a hash of a snapshot row's
values, so an unchanged row is neither sent nor compared again.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mlm_user_fingerprints",
        sa.Column("user_id", sa.Integer, primary_key=True),
        sa.Column("row_version", sa.BigInteger, nullable=False),
        sa.Column("computed_hash", sa.BigInteger, nullable=False),
        sa.Column("hash_version", sa.String(50), nullable=False),
        sa.Column("run_id", sa.BigInteger, nullable=False),
    )
    op.add_column("mlm_period_snapshots", sa.Column("fingerprint", sa.BigInteger))


def downgrade() -> None:
    op.drop_column("mlm_period_snapshots", "fingerprint")
    op.drop_table("mlm_user_fingerprints")
