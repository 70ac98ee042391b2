"""Periods: which months are closed, their final snapshots and ``monthly_stats``, reopening.

A closed month's final snapshot is never rewritten by a backfill; closing again with the same
result changes nothing; only the most recently closed month can be reopened, and every close and
reopen is recorded in ``mlm_period_events``.

``monthly_stats`` is shared with the platform, whose jobs fill its money columns: a close creates
a user's row for the month or updates its volume columns, and never deletes one; reopening leaves
it as it is, and closing again updates it the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime

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
    counts = joined.select(e.sum().alias(c) for c, e in differs.items()).row(0, named=True)
    changed = joined.filter(pl.any_horizontal(list(differs.values())))
    by_column = {c: n for c, n in counts.items() if n}
    examples = [
        f"user {row['user_id']}: " + ", ".join(f"{c} {row[c]} -> {row[c + '_new']}" for c in by_column if row[c] != row[c + "_new"])
        for row in changed.head(5).to_dicts()
    ]
    return {"users_differing": changed.height, "by_column": by_column, "examples": examples}


def write_final(connection: psycopg.Connection, result: Recomputed, run_id: int, *, fingerprint: str) -> dict:
    """Inside the caller's transaction: the final snapshot, ``monthly_stats`` and the closed mark;
    how many rows of each were written."""
    snapshot = _write_final_snapshot(connection, result, run_id)
    stats = write_monthly_stats(connection, result)
    _mark_closed(connection, result.period, run_id, fingerprint)
    return {"snapshot_rows": snapshot, **stats}


def _write_final_snapshot(connection: psycopg.Connection, result: Recomputed, run_id: int) -> int:
    """Replace the period's snapshot (the project's own table) with the final one; its row count."""
    connection.execute("DELETE FROM mlm_period_snapshots WHERE period = %s", [result.period])
    rows = snapshot_rows(result, run_id, is_final=True)
    copy_frame(connection, "mlm_period_snapshots", rows)
    return rows.height


def _mark_closed(connection: psycopg.Connection, period: str, run_id: int, fingerprint: str) -> None:
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


# The monthly_stats columns a close computes. The money columns ("commissionsEarned",
# "bonusesEarned", "globalPoolEarned") belong to the platform's jobs; a close only fills
# "commissionsEarned" on a row it creates.
STATS_VOLUME_COLUMNS = (
    "personalVolume",
    "teamVolume",
    "activePartnersCount",
    "directReferralsCount",
    "totalTeamSize",
    "activeRank",
    "wasActive",
)


def month_bounds(period: str) -> tuple[datetime, datetime]:
    """The month's first instant and the next month's, as the platform's naive UTC timestamps."""
    year, month = int(period[:4]), int(period[5:7])
    return datetime(year, month, 1), datetime(year + month // 12, month % 12 + 1, 1)


def stats_volumes(result: Recomputed) -> pl.DataFrame:
    """The close's volume columns of ``monthly_stats``: one row per user but the root (the
    platform's own monthly job skips the root too). ``teamVolume`` is the qualifying volume (the
    50% rule), the value of the snapshot's ``qualifying_volume``, as the platform writes it."""
    return result.state.filter(~pl.col("is_root")).select(
        pl.col("user_id").cast(pl.Int32).alias("userID"),
        cents_text(pl.col("monthly_pv_cents")).alias("personalVolume"),
        cents_text(pl.col("qualifying_volume_cents")).alias("teamVolume"),
        pl.col("active_partners").alias("activePartnersCount"),
        pl.col("direct_referrals").alias("directReferralsCount"),
        pl.col("team_size").alias("totalTeamSize"),
        pl.col("rank").alias("activeRank"),
        pl.col("is_active").cast(pl.Int32).alias("wasActive"),
    )


def write_monthly_stats(connection: psycopg.Connection, result: Recomputed) -> dict:
    """Inside the caller's transaction: the month's ``monthly_stats`` rows, without losing what the
    platform wrote. A user's existing rows (same ``"userID"`` and month) get the volume columns
    only; a user without one gets a new row whose ``"commissionsEarned"`` is the sum of their
    bonuses created that month. Nothing is deleted. How many rows were updated and inserted."""
    _stage_stats_volumes(connection, stats_volumes(result))
    # No unique key on ("userID", month), so no ON CONFLICT: a platform job inserting the same
    # user's row between the update and the insert would make a duplicate. Writers of
    # monthly_stats wait for this transaction (readers do not).
    connection.execute("LOCK TABLE monthly_stats IN SHARE ROW EXCLUSIVE MODE")
    with _hash_joins_only(connection):
        updated = _update_stats_volumes(connection, result.period)
        inserted = _insert_new_stats(connection, result.period)
    return {"monthly_stats_updated": updated, "monthly_stats_inserted": inserted}


@contextlib.contextmanager
def _hash_joins_only(connection: psycopg.Connection) -> Iterator[None]:
    """No nested-loop joins inside the block (this transaction only; the setting is restored).

    The month's monthly_stats rows were most likely just written by the platform's monthly job,
    or not yet: either way the table's statistics are stale for that month (one month is a few
    percent of the table, below autoanalyze's threshold), and an estimate of one row where there
    are 100,000 turned the insert's anti join into a nested loop of minutes (measured). A hash
    join costs the same whatever the estimate. On an error the transaction is rolled back, and
    the setting with it."""
    previous = connection.execute("SELECT current_setting('enable_nestloop')").fetchone()[0]
    connection.execute("SELECT set_config('enable_nestloop', 'off', true)")
    yield
    connection.execute("SELECT set_config('enable_nestloop', %s, true)", [previous])


def _stage_stats_volumes(connection: psycopg.Connection, volumes: pl.DataFrame) -> None:
    # The staging table takes its column types from monthly_stats itself, whatever the platform
    # made them, so the update and insert below compare and copy like for like.
    columns = ", ".join(f'"{c}"' for c in ("userID", *STATS_VOLUME_COLUMNS))
    connection.execute(f"CREATE TEMP TABLE mlm_close_stats ON COMMIT DROP AS SELECT {columns} FROM monthly_stats WITH NO DATA")
    copy_frame(connection, "mlm_close_stats", volumes.select("userID", *STATS_VOLUME_COLUMNS))
    connection.execute("ANALYZE mlm_close_stats")


def _update_stats_volumes(connection: psycopg.Connection, period: str) -> int:
    """Set the volume columns of the month's existing rows (one hash join on ``"userID"``: it has
    no index); rows already holding those values are not rewritten. The rows updated."""
    stored = ", ".join(f'm."{c}"' for c in STATS_VOLUME_COLUMNS)
    staged = ", ".join(f's."{c}"' for c in STATS_VOLUME_COLUMNS)
    return connection.execute(
        f"""UPDATE monthly_stats AS m SET {", ".join(f'"{c}" = s."{c}"' for c in STATS_VOLUME_COLUMNS)}
            FROM mlm_close_stats AS s
            WHERE m."month" = %s AND m."userID" = s."userID" AND ({stored}) IS DISTINCT FROM ({staged})""",
        [period],
    ).rowcount


def _insert_new_stats(connection: psycopg.Connection, period: str) -> int:
    """Insert a row for every staged user who has none for the month, ``"commissionsEarned"``
    from the month's bonuses (aggregated once, by ``"userID"``: bonuses has no index on it).
    ``"bonusesEarned"`` and ``"globalPoolEarned"`` are left for the platform's jobs. The rows inserted."""
    first, following = month_bounds(period)
    columns = ", ".join(f'"{c}"' for c in STATS_VOLUME_COLUMNS)
    staged = ", ".join(f's."{c}"' for c in STATS_VOLUME_COLUMNS)
    return connection.execute(
        f"""INSERT INTO monthly_stats ("createdAt", "userID", "month", {columns}, "commissionsEarned")
            SELECT now() AT TIME ZONE 'utc', s."userID", %(period)s::text, {staged}, coalesce(b.earned, 0)
            FROM mlm_close_stats AS s
            LEFT JOIN (SELECT "userID", sum("bonusAmount") AS earned FROM bonuses
                       WHERE "createdAt" >= %(first)s AND "createdAt" < %(following)s
                       GROUP BY "userID") AS b ON b."userID" = s."userID"
            WHERE NOT EXISTS (SELECT FROM monthly_stats AS m WHERE m."month" = %(period)s::text AND m."userID" = s."userID")""",
        {"period": period, "first": first, "following": following},
    ).rowcount


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
