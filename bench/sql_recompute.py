"""The plain-SQL alternative: full volume and active partners recomputed inside PostgreSQL.

One statement, a recursive CTE (``WITH RECURSIVE``), as a user would write it without this
project: every buyer's lifetime total (PVT) and whether it is active this period are carried up
its upline chain (by telegramID, the way the tree links), at most ``plan.max_depth`` levels and
never past the root, then summed per ancestor. Rules (domain.md 3, 6, 7):

* ``full_volume``: the sum of PVT over the user's descendants at most ``max_depth`` levels below
  it (its own purchases never count);
* ``active_partners``: active users (PV of the period >= the plan's minimum) in that downline (or
  among direct referrals under the ``direct`` scope); 0 for the root.

It computes only these two values, into a temporary table, and writes nothing to the platform:
no ranks, branches, pioneers or documents. It is therefore a lower bound of what a complete SQL
recompute would cost, which is the generous side for the comparison.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import psycopg
from psycopg import errors, sql

from db.extract import WORK_MEM, naive_utc
from transforms.plan import Plan
from transforms.volumes import month_start

RESULT_TABLE = "mlm_sql_recompute"

# Purchases filtered as the extract filters them (before the cut-off, not negative); only buyers
# start a walk, since a user without purchases adds nothing to anyone. The walk stops at the
# root (whose upline is itself) and after max_depth levels.
RECOMPUTE_SQL = """
CREATE TEMP TABLE {result} AS
WITH RECURSIVE
personal AS (
    SELECT "userID" AS user_id,
           sum("packPrice") AS pvt,
           coalesce(sum("packPrice") FILTER (WHERE "createdAt" >= {period_start} AND "createdAt" < {period_end}), 0)
               >= {min_pv} AS active
    FROM purchases
    WHERE "createdAt" < {as_of} AND "packPrice" >= 0
    GROUP BY "userID"
),
up (ancestor, pvt, active, distance) AS (
    SELECT u."upline", p.pvt, p.active, 1
    FROM personal AS p JOIN users AS u ON u."userID" = p.user_id
    WHERE u."telegramID" <> {root} AND {max_depth} >= 1
  UNION ALL
    SELECT a."upline", up.pvt, up.active, up.distance + 1
    FROM up JOIN users AS a ON a."telegramID" = up.ancestor
    WHERE a."telegramID" <> {root} AND up.distance < {max_depth}
)
SELECT u."userID" AS user_id,
       coalesce(t.full_volume, 0)::numeric(15, 2) AS full_volume,
       CASE WHEN u."telegramID" = {root} THEN 0 ELSE coalesce(t.active_partners, 0) END::integer AS active_partners
FROM users AS u
LEFT JOIN (
    SELECT ancestor, sum(pvt) AS full_volume, count(*) FILTER (WHERE active AND {counted}) AS active_partners
    FROM up GROUP BY ancestor
) AS t ON t.ancestor = u."telegramID"
"""

# Every user's SQL values against what the project stored: the fullVolume column it wrote and
# the active partners of its period snapshot.
COMPARE_SQL = """
SELECT count(*),
       count(*) FILTER (WHERE r.full_volume IS DISTINCT FROM u."fullVolume"),
       count(*) FILTER (WHERE r.active_partners IS DISTINCT FROM s.active_partners),
       coalesce(sum(r.full_volume), 0),
       coalesce(sum(u."fullVolume"), 0)
FROM {result} AS r
JOIN users AS u ON u."userID" = r.user_id
LEFT JOIN mlm_period_snapshots AS s ON s.user_id = r.user_id AND s.period = %s
"""


@dataclass(frozen=True)
class Comparison:
    """The SQL results against the project's stored ones: users compared, how many differ in
    full volume and in active partners, and the two full-volume totals (USD)."""

    users: int
    full_volume_mismatches: int
    active_partner_mismatches: int
    sql_full_volume_total: Decimal
    project_full_volume_total: Decimal

    @property
    def matches(self) -> bool:
        return self.users > 0 and self.full_volume_mismatches == 0 and self.active_partner_mismatches == 0 and (
            self.sql_full_volume_total == self.project_full_volume_total
        )


def recompute_statement(connection: psycopg.Connection, *, as_of: datetime, period: str, plan: Plan, root_telegram_id: int) -> str:
    """The statement, values inlined as literals (a utility statement takes no bind parameters)."""
    start = month_start(period)
    end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    # Unlimited depth still ends: every walk stops at the root (cycles are refused by the project).
    depth = plan.max_depth if plan.max_depth is not None else 2**31 - 1
    counted = "up.distance = 1" if plan.active_partners_scope == "direct" else "true"
    statement = sql.SQL(RECOMPUTE_SQL).format(
        result=sql.Identifier(RESULT_TABLE),
        period_start=sql.Literal(start.isoformat()) + sql.SQL("::timestamp"),
        period_end=sql.Literal(end.isoformat()) + sql.SQL("::timestamp"),
        as_of=sql.Literal(naive_utc(as_of)) + sql.SQL("::timestamp"),
        min_pv=sql.Literal(Decimal(plan.min_monthly_pv_cents) / 100) + sql.SQL("::numeric"),
        root=sql.Literal(root_telegram_id) + sql.SQL("::bigint"),
        max_depth=sql.Literal(depth),
        counted=sql.SQL(counted),
    )
    return statement.as_string(connection)


def recompute(
    connection: psycopg.Connection, *, as_of: datetime, period: str, plan: Plan, root_telegram_id: int, timeout_s: float | None = None
) -> float | None:
    """Build the temporary table ``mlm_sql_recompute`` (one row per user: ``user_id``,
    ``full_volume``, ``active_partners``) on ``connection`` and commit it (a temporary table
    lives as long as the session and touches no platform data). Returns the seconds it took, or
    None when ``timeout_s`` ran out first (nothing is left behind then).

    ``connection`` must not be in autocommit mode.
    """
    statement = recompute_statement(connection, as_of=as_of, period=period, plan=plan, root_telegram_id=root_telegram_id)
    connection.execute(f"DROP TABLE IF EXISTS {RESULT_TABLE}")
    connection.commit()
    # The same memory the project's extract gives its aggregation, so neither is starved.
    connection.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
    if timeout_s is not None:
        connection.execute(f"SET LOCAL statement_timeout = '{int(timeout_s * 1000)}ms'")
    started = time.perf_counter()
    try:
        connection.execute(statement)
        connection.commit()
    except errors.QueryCanceled:
        connection.rollback()
        return None
    return time.perf_counter() - started


def compare_with_project(connection: psycopg.Connection, period: str) -> Comparison:
    """Compare every user's SQL values with the project's stored ones (after the project ran)."""
    row = connection.execute(sql.SQL(COMPARE_SQL).format(result=sql.Identifier(RESULT_TABLE)), [period]).fetchone()
    connection.rollback()
    return Comparison(*row)


def results(connection: psycopg.Connection) -> dict[int, tuple[Decimal, int]]:
    """The SQL results per userID: (full volume in USD, active partners). For small databases (tests)."""
    rows = connection.execute(f"SELECT user_id, full_volume, active_partners FROM {RESULT_TABLE}").fetchall()
    connection.rollback()
    return {user_id: (full_volume, active_partners) for user_id, full_volume, active_partners in rows}


def drop(connection: psycopg.Connection) -> None:
    connection.execute(f"DROP TABLE IF EXISTS {RESULT_TABLE}")
    connection.commit()
