"""Periods: which months are closed, their final snapshots and ``monthly_stats``, reopening.

A closed month's final snapshot is never rewritten by a backfill; closing again with the same
result changes nothing; only the most recently closed month can be reopened, and every close and
reopen is recorded in ``mlm_period_events``.
"""

from __future__ import annotations

import polars as pl
import psycopg
import sqlalchemy as sa

from db.connection import Database
from db.copy import copy_frame
from db.load import snapshot_rows
from db.schema import period_events, periods
from transforms.money import cents_text
from transforms.recompute import SNAPSHOT_COLUMNS, Recomputed

# The snapshot's value columns as stored (money without the _cents suffix).
SNAPSHOT_VALUES = [c.removesuffix("_cents") for c in SNAPSHOT_COLUMNS if c != "user_id"]


class PeriodRefused(RuntimeError):
    """A close, reopen or backfill that the period rules do not allow; the message says why."""


def closed_periods(db: Database) -> list[str]:
    """Every closed month, oldest first."""
    with db.engine.connect() as connection:
        return list(connection.execute(sa.select(periods.c.period).where(periods.c.is_closed).order_by(periods.c.period)).scalars())


def previous_ranks(db: Database, period: str) -> pl.DataFrame:
    """The rank each user held in the month before ``period`` (its snapshot); one row per user.

    Backfills and closes carry the never-down rank from month to month through the snapshots,
    so rebuilding history never borrows a rank from the future (the stored rank is today's).
    """
    with db.connect_raw() as connection:
        rows = connection.execute(
            """SELECT user_id, rank FROM mlm_period_snapshots
               WHERE period = to_char((to_date(%s, 'YYYY-MM') - interval '1 month'), 'YYYY-MM')""",
            [period],
        ).fetchall()
    return pl.DataFrame(rows, schema={"user_id": pl.Int64, "previous_rank": pl.String}, orient="row")


def stored_snapshot(db: Database, period: str) -> pl.DataFrame:
    """The stored snapshot rows of ``period`` as text, for comparison; one row per user."""
    with db.connect_raw() as connection:
        cursor = connection.execute(
            f"SELECT user_id, {', '.join(f'{c}::text AS {c}' for c in SNAPSHOT_VALUES)} FROM mlm_period_snapshots WHERE period = %s",
            [period],
        )
        rows = cursor.fetchall()
    return pl.DataFrame(rows, schema={"user_id": pl.Int64, **{c: pl.String for c in SNAPSHOT_VALUES}}, orient="row")


def computed_snapshot(result: Recomputed) -> pl.DataFrame:
    """The computed snapshot rows as the text PostgreSQL would show; one row per user."""
    rows = snapshot_rows(result, run_id=0, is_final=True)
    return rows.select(
        pl.col("user_id").cast(pl.Int64),
        *(pl.col(c).cast(pl.String) for c in SNAPSHOT_VALUES if c not in ("is_active",)),
        pl.when(pl.col("is_active")).then(pl.lit("true")).otherwise(pl.lit("false")).alias("is_active"),
    ).select("user_id", *SNAPSHOT_VALUES)


def snapshot_difference(stored: pl.DataFrame, computed: pl.DataFrame) -> dict:
    """How a stored final snapshot and a new computation differ: users per column, and examples."""
    joined = stored.join(computed, on="user_id", how="full", suffix="_new", coalesce=True)
    differs = {c: (pl.col(c).ne_missing(pl.col(f"{c}_new"))) for c in SNAPSHOT_VALUES}
    counts = joined.select(pl.len().alias("users"), *(e.sum().alias(c) for c, e in differs.items())).row(0, named=True)
    changed = joined.filter(pl.any_horizontal(list(differs.values())))
    by_column = {c: n for c, n in counts.items() if c != "users" and n}
    examples = [
        f"user {row['user_id']}: " + ", ".join(f"{c} {row[c]} -> {row[c + '_new']}" for c in by_column if row[c] != row[c + "_new"])
        for row in changed.head(5).to_dicts()
    ]
    return {"users_differing": changed.height, "by_column": by_column, "examples": examples}


def write_final(
    connection: psycopg.Connection, result: Recomputed, run_id: int, *, fingerprint: str, team_size: pl.DataFrame
) -> int:
    """Inside the caller's transaction: the final snapshot, ``monthly_stats`` and the closed mark."""
    period = result.period
    connection.execute("DELETE FROM mlm_period_snapshots WHERE period = %s", [period])
    rows = snapshot_rows(result, run_id, is_final=True)
    copy_frame(connection, "mlm_period_snapshots", rows)
    connection.execute("""DELETE FROM monthly_stats WHERE "month" = %s""", [period])
    stats = (
        result.state.join(team_size, on="user_id", how="left")
        .select(
            pl.col("user_id").alias("userID"),
            pl.lit(period).alias("month"),
            cents_text(pl.col("monthly_pv_cents")).alias("personalVolume"),
            cents_text(pl.col("full_volume_cents")).alias("teamVolume"),
            pl.col("active_partners").alias("activePartnersCount"),
            pl.col("direct_referrals").alias("directReferralsCount"),
            pl.col("team_size").fill_null(0).alias("totalTeamSize"),
            pl.col("rank").alias("activeRank"),
            pl.col("is_active").cast(pl.Int32).alias("wasActive"),
        )
    )
    copy_frame(connection, "monthly_stats", stats)
    connection.execute(
        """INSERT INTO mlm_periods (period, is_closed, closed_at, close_run_id, input_fingerprint)
           VALUES (%s, true, now(), %s, %s)
           ON CONFLICT (period) DO UPDATE SET is_closed = true, closed_at = now(),
                close_run_id = EXCLUDED.close_run_id, input_fingerprint = EXCLUDED.input_fingerprint""",
        [period, run_id, fingerprint],
    )
    connection.execute(
        "INSERT INTO mlm_period_events (period, event, actor, reason, run_id) VALUES (%s, 'closed', current_user, NULL, %s)",
        [period, run_id],
    )
    return rows.height


def reopen(db: Database, period: str, *, actor: str, reason: str) -> None:
    """Reopen ``period``: only the most recently closed month, with who and why recorded."""
    if not reason.strip():
        raise PeriodRefused("reopening needs a reason (--reason)")
    with db.engine.begin() as connection:
        connection.execute(sa.text("LOCK TABLE mlm_periods IN EXCLUSIVE MODE"))
        latest = connection.execute(sa.select(sa.func.max(periods.c.period)).where(periods.c.is_closed)).scalar()
        if latest is None:
            raise PeriodRefused(f"{period} is not closed: no month is closed")
        if period != latest:
            raise PeriodRefused(f"only the most recently closed month ({latest}) can be reopened, not {period}")
        connection.execute(sa.update(periods).where(periods.c.period == period).values(is_closed=False))
        connection.execute(sa.insert(period_events).values(period=period, event="reopened", actor=actor, reason=reason))
