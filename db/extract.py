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


def _object_key(column: str, key: str) -> str:
    """SQL for one key of a JSON column, or NULL when the column is not an object."""
    return f"""CASE WHEN jsonb_typeof("{column}"::jsonb) = 'object' THEN "{column}"::jsonb -> '{key}' END"""


USERS_SQL = f"""
SELECT "userID"::bigint AS user_id,
       "telegramID"::bigint AS telegram_id,
       "upline"::bigint AS upline_telegram_id,
       "rank"::text AS previous_rank,
       ({_object_key("mlmStatus", "hasPioneerBonus")}) = 'true'::jsonb AS has_pioneer_bonus,
       ({_object_key("mlmStatus", "pioneerGrantedAt")}) #>> '{{}}' AS pioneer_granted_at,
       CASE WHEN jsonb_typeof({_object_key("mlmStatus", "pioneerPurchaseId")}) = 'number'
            THEN ({_object_key("mlmStatus", "pioneerPurchaseId")} #>> '{{}}')::numeric::bigint END AS pioneer_purchase_id,
       jsonb_typeof("mlmStatus"::jsonb) AS mlm_status_type,
       jsonb_typeof("mlmVolumes"::jsonb) AS mlm_volumes_type,
       jsonb_typeof("totalVolume"::jsonb) AS total_volume_type
FROM users
"""

# Per user and month, valid purchases only (bad ones are reported by PURCHASE_PROBLEMS_SQL).
# The month label is formatted after grouping, once per group rather than once per purchase.
MONTHLY_VOLUMES_SQL = """
SELECT user_id, to_char(month_start, 'YYYY-MM') AS month, volume_cents
FROM (
    SELECT "userID"::bigint AS user_id,
           date_trunc('month', "createdAt") AS month_start,
           (sum("packPrice") * 100)::bigint AS volume_cents
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
SELECT (SELECT max("purchaseID")::bigint FROM purchases WHERE "createdAt" < $1::timestamp) AS max_purchase_id,
       (SELECT count(*) FROM purchases WHERE "createdAt" < $1::timestamp) AS purchase_count,
       (SELECT count(*) FROM users) AS user_count
"""


def naive_utc(instant: datetime) -> str:
    """A cut-off as the platform's ``timestamp without time zone`` (meant as UTC) literal."""
    if instant.tzinfo is None:
        raise ValueError(f"cut-off {instant!r} has no time zone; give it in UTC")
    return instant.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")


@contextlib.contextmanager
def snapshot(db: Database):
    """An ADBC cursor inside one REPEATABLE READ, read-only transaction (rolled back at the end)."""
    with adbc.connect(db.uri) as connection:
        cursor = connection.cursor()
        try:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute("SET LOCAL TIME ZONE 'UTC'")
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
