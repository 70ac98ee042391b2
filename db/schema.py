"""Every table the recompute reads or writes, declared once as SQLAlchemy Core tables.

The platform's tables are declared in ``db.platform_schema`` exactly as the platform's models
create them (all seventeen; the recompute reads ``users``, ``purchases`` and ``bonuses`` and
writes ``users``, ``rank_history`` and ``monthly_stats``). They belong to the platform: the
project creates them only where they do not exist (its embedded default, demo data, tests) and
never alters them. JSON columns are ``json`` as on the platform; every statement here also
works when they are ``jsonb``.

The project's own bookkeeping tables (prefix ``mlm_``) are created and upgraded by the Alembic
migrations in ``db/migrations``; the declarations below are what those migrations build, and a
test checks that the two agree.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from db.platform_schema import PLATFORM_TABLES, bonuses, metadata, monthly_stats, options, projects, purchases, rank_history, users

__all__ = ["PLATFORM_TABLES", "bonuses", "metadata", "monthly_stats", "options", "projects", "purchases", "rank_history", "users"]

# The users columns the recompute owns (writes), and the JSON documents it never writes.
OWNED_USER_COLUMNS = (
    "rank",
    "isActive",
    "fullVolume",
    "teamVolumeTotal",
    "personalVolumeTotal",
    "mlmStatus",
    "mlmVolumes",
    "totalVolume",
)
FOREIGN_DOCUMENTS = ("personalData", "emailVerification", "settings")

# --- the project's own tables (built by the Alembic migrations) -----------------------------

runs = sa.Table(
    "mlm_runs",
    metadata,
    sa.Column("run_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("mode", sa.String(20), nullable=False),  # nightly | backfill | close | audit | scenario
    sa.Column("status", sa.String(20), nullable=False),  # running | succeeded | failed | refused | abandoned | committed (see db.ledger)
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

period_snapshots = sa.Table(
    "mlm_period_snapshots",
    metadata,
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
    # A hash of the row's values (see transforms.fingerprints): unchanged rows are not rewritten.
    sa.Column("fingerprint", sa.BigInteger),
)

user_fingerprints = sa.Table(
    "mlm_user_fingerprints",
    metadata,
    sa.Column("user_id", sa.Integer, primary_key=True),
    # The users row's version (its xmin) right after the last run that compared it.
    sa.Column("row_version", sa.BigInteger, nullable=False),
    # A hash of what that run computed for them (provenance left out).
    sa.Column("computed_hash", sa.BigInteger, nullable=False),
    # The hash functions' version: a hash from another version is never trusted.
    sa.Column("hash_version", sa.String(50), nullable=False),
    sa.Column("run_id", sa.BigInteger, nullable=False),
)

# A memo of the purchases' aggregates per user and month (db.extract); UNLOGGED, derived.
purchase_months = sa.Table(
    "mlm_purchase_months",
    metadata,
    sa.Column("user_id", sa.BigInteger, nullable=False),
    # No index: the memo is read whole, and replacing a month scans it once (an index would
    # cost more on every fill than it saves on the delete).
    sa.Column("month", sa.Date, nullable=False),
    sa.Column("volume_cents", sa.BigInteger, nullable=False),
    # The user's earliest purchase that month at or above the pioneer minimum.
    sa.Column("candidate_at_us", sa.BigInteger),
    sa.Column("candidate_id", sa.BigInteger),
    prefixes=["UNLOGGED"],
)

# What each memoized month was computed from: its rows' count and checksum, and the pioneer minimum.
purchase_month_sums = sa.Table(
    "mlm_purchase_month_sums",
    metadata,
    sa.Column("month", sa.Date, primary_key=True),
    sa.Column("purchases", sa.BigInteger, nullable=False),
    sa.Column("checksum", sa.BigInteger),
    sa.Column("candidate_min_cents", sa.BigInteger, nullable=False),
    prefixes=["UNLOGGED"],
)

periods = sa.Table(
    "mlm_periods",
    metadata,
    sa.Column("period", sa.String(7), primary_key=True),
    sa.Column("is_closed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("closed_at", sa.DateTime(timezone=True)),
    sa.Column("close_run_id", sa.BigInteger),
    sa.Column("input_fingerprint", sa.Text),  # the close's watermark; grows with the counts' digits (0004)
)

period_events = sa.Table(
    "mlm_period_events",
    metadata,
    sa.Column("event_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("period", sa.String(7), nullable=False, index=True),
    sa.Column("event", sa.String(20), nullable=False),  # closed | reopened
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("actor", sa.String(200)),
    sa.Column("reason", sa.Text),
    sa.Column("run_id", sa.BigInteger),
)

validation_failures = sa.Table(
    "mlm_validation_failures",
    metadata,
    sa.Column("failure_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("run_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("user_id", sa.Integer),
    sa.Column("check_name", sa.String(100), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
)

OWN_TABLES = (runs, period_snapshots, user_fingerprints, periods, period_events, validation_failures)
# Derived data a run may refresh whatever its outcome (it only memoizes the purchases).
MEMO_TABLES = (purchase_months, purchase_month_sums)
