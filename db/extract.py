"""Read the recompute's inputs from the platform's tables into Polars, in one consistent snapshot.

This is the only module that names the platform's source tables for reading. Everything is read
through ADBC (Arrow, columnar) inside one REPEATABLE READ transaction, so users, purchases and the
watermark all describe the same instant. Aggregation happens in SQL where it shrinks the data:
purchases arrive per user and month, not per row. JSON columns are read through ``::jsonb`` so
``json`` and ``jsonb`` columns behave the same.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timezone

import adbc_driver_postgresql.dbapi as adbc
import polars as pl

from db.connection import Database
from transforms.recompute import (
    CANDIDATE_COLUMNS,
    MONTHLY_VOLUME_COLUMNS,
    PURCHASE_PROBLEM_COLUMNS,
    USER_INPUT_COLUMNS,
    Inputs,
)


@dataclass(frozen=True)
class Watermark:
    """What the snapshot contained: the newest purchase and the row counts before the cut-off."""

    max_purchase_id: int | None
    purchase_count: int
    user_count: int


# Each JSON column is parsed once (the LATERAL), whether it is json or jsonb.
USERS_SQL = """
SELECT u."userID"::bigint AS user_id,
       u."telegramID"::bigint AS telegram_id,
       u."upline"::bigint AS upline_telegram_id,
       u."rank"::text AS previous_rank,
       CASE WHEN d.status_type = 'object' THEN d.status -> 'hasPioneerBonus' = 'true'::jsonb END AS has_pioneer_bonus,
       CASE WHEN d.status_type = 'object' THEN d.status ->> 'pioneerGrantedAt' END AS pioneer_granted_at,
       CASE WHEN d.status_type = 'object' AND jsonb_typeof(d.status -> 'pioneerPurchaseId') = 'number'
            THEN (d.status ->> 'pioneerPurchaseId')::numeric::bigint END AS pioneer_purchase_id,
       d.status_type AS mlm_status_type,
       jsonb_typeof(u."mlmVolumes"::jsonb) AS mlm_volumes_type,
       jsonb_typeof(u."totalVolume"::jsonb) AS total_volume_type
FROM users AS u,
     LATERAL (SELECT u."mlmStatus"::jsonb AS status, jsonb_typeof(u."mlmStatus"::jsonb) AS status_type) AS d
"""

# Per user and month (its first day), valid purchases only (bad ones are reported by
# PURCHASE_PROBLEMS_SQL). The cast to date happens once per group, not once per purchase.
MONTHLY_VOLUMES_SQL = """
SELECT user_id, month_start::date AS month, volume_cents
FROM (
    SELECT "userID"::bigint AS user_id,
           date_trunc('month', "createdAt") AS month_start,
           sum(("packPrice" * 100)::bigint)::bigint AS volume_cents
    FROM purchases
    WHERE "createdAt" < $1::timestamp AND "packPrice" >= 0
    GROUP BY 1, 2
) AS per_user_month
"""

PIONEER_CANDIDATES_SQL = """
SELECT DISTINCT ON (p."userID")
       p."userID"::bigint AS user_id, p."purchaseID"::bigint AS purchase_id, p."createdAt" AS purchased_at
FROM purchases AS p
WHERE p."createdAt" < $1::timestamp
  AND p."packPrice" >= $2::numeric
  AND EXISTS (SELECT 1 FROM users AS u WHERE u."userID" = p."userID")
ORDER BY p."userID", p."createdAt", p."purchaseID"
"""

PURCHASE_PROBLEMS_SQL = """
SELECT p."purchaseID"::bigint AS purchase_id, p."userID"::bigint AS user_id,
       CASE WHEN u."userID" IS NULL THEN 'unknown_user'
            WHEN p."createdAt" IS NULL THEN 'bad_time'
            ELSE 'bad_price' END AS kind
FROM purchases AS p
LEFT JOIN users AS u ON u."userID" = p."userID"
WHERE (p."createdAt" < $1::timestamp OR p."createdAt" IS NULL)
  AND (u."userID" IS NULL OR p."createdAt" IS NULL OR p."packPrice" IS NULL OR p."packPrice" < 0)
"""

WATERMARK_SQL = """
SELECT max("purchaseID")::bigint AS max_purchase_id, count(*) AS purchase_count,
       (SELECT count(*) FROM users) AS user_count
FROM purchases WHERE "createdAt" < $1::timestamp
"""


def naive_utc(instant: datetime) -> str:
    """A cut-off as the platform's ``timestamp without time zone`` (meant as UTC) literal."""
    if instant.tzinfo is None:
        raise ValueError(f"cut-off {instant!r} has no time zone; give it in UTC")
    return instant.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")


WORK_MEM = "256MB"


@contextlib.contextmanager
def snapshot(db: Database):
    """An ADBC cursor inside one REPEATABLE READ, read-only transaction (rolled back at the end)."""
    with adbc.connect(db.uri) as connection:
        cursor = connection.cursor()
        try:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute("SET LOCAL TIME ZONE 'UTC'")
            # Enough memory to aggregate purchases by hash in one pass; with the default 4 MB
            # the planner walks the userID index instead, several times slower.
            cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
            yield cursor
        finally:
            cursor.close()
            connection.rollback()


def _frame(cursor, sql: str, parameters: tuple, schema: dict) -> pl.DataFrame:
    cursor.execute(sql, parameters=parameters)
    frame = pl.from_arrow(cursor.fetch_arrow_table())
    return frame.cast({name: dtype for name, dtype in schema.items() if name in frame.columns})


def inputs(db: Database, as_of: datetime, pioneer_min_purchase_cents: int) -> tuple[Inputs, Watermark]:
    """Everything the recompute reads as of the cut-off ``as_of``, and the snapshot's watermark."""
    cut_off = naive_utc(as_of)
    min_price = f"{pioneer_min_purchase_cents // 100}.{pioneer_min_purchase_cents % 100:02d}"
    with snapshot(db) as cursor:
        read = Inputs(
            users=_frame(cursor, USERS_SQL, (), USER_INPUT_COLUMNS),
            monthly_volumes=_frame(cursor, MONTHLY_VOLUMES_SQL, (cut_off,), MONTHLY_VOLUME_COLUMNS),
            pioneer_candidates=_frame(cursor, PIONEER_CANDIDATES_SQL, (cut_off, min_price), CANDIDATE_COLUMNS),
            purchase_problems=_frame(cursor, PURCHASE_PROBLEMS_SQL, (cut_off,), PURCHASE_PROBLEM_COLUMNS),
        )
        cursor.execute(WATERMARK_SQL, parameters=(cut_off,))
        max_id, purchase_count, user_count = cursor.fetchone()
    return read, Watermark(max_id, int(purchase_count), int(user_count))
