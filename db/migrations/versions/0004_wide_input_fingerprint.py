"""``mlm_periods.input_fingerprint`` becomes text: the watermark it holds
(``plan=...;max_purchase_id=...;purchases=...;users=...``) outgrew varchar(64) at a few thousand
users, and its length grows with the plan version's and the counts' digits, so no fixed bound fits.

varchar to text is a binary-compatible change in PostgreSQL: the table is not rewritten and every
stored fingerprint is kept as it is.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("mlm_periods", "input_fingerprint", type_=sa.Text, existing_type=sa.String(64), existing_nullable=True)


def downgrade() -> None:
    # Fails, as it should, if a stored fingerprint is longer than 64 characters.
    op.alter_column("mlm_periods", "input_fingerprint", type_=sa.String(64), existing_type=sa.Text, existing_nullable=True)
