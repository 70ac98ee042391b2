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


def users_sql(column_types: dict[str, str]) -> str:
    """The users query. ``mlmStatus`` is parsed once (the LATERAL) for its pioneer keys; the other
    documents only need their JSON type, which ``json_typeof`` reads from the first character of
    a ``json`` column instead of parsing the whole document (``totalVolume`` can be large)."""

    def type_of(column: str) -> str:
        function = "json_typeof" if column_types.get(column) == "json" else "jsonb_typeof"
        return f'{function}(u."{column}")'

    return f"""
SELECT u."userID"::bigint AS user_id,
       u."telegramID"::bigint AS telegram_id,
       u."upline"::bigint AS upline_telegram_id,
       u."rank"::text AS previous_rank,
       CASE WHEN d.status_type = 'object' THEN d.status -> 'hasPioneerBonus' = 'true'::jsonb END AS has_pioneer_bonus,
       CASE WHEN d.status_type = 'object' THEN d.status ->> 'pioneerGrantedAt' END AS pioneer_granted_at,
       CASE WHEN d.status_type = 'object' AND jsonb_typeof(d.status -> 'pioneerPurchaseId') = 'number'
            THEN (d.status ->> 'pioneerPurchaseId')::numeric::bigint END AS pioneer_purchase_id,
       d.status_type AS mlm_status_type,
       {type_of("mlmVolumes")} AS mlm_volumes_type,
       {type_of("totalVolume")} AS total_volume_type
FROM users AS u,
     LATERAL (SELECT u."mlmStatus"::jsonb AS status, jsonb_typeof(u."mlmStatus"::jsonb) AS status_type) AS d
"""


COLUMN_TYPES_SQL = """
SELECT column_name::text, data_type::text FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = 'users'
"""


# Per user and month (its first day), valid purchases only (bad ones are reported by
# PURCHASE_PROBLEMS_SQL). The cast to date happens once per group, not once per purchase.
# The purchase count and newest purchaseID per group give the watermark without another scan.
MONTHLY_VOLUMES_SQL = """
SELECT user_id, month_start::date AS month, volume_cents, purchases, max_purchase_id
FROM (
    SELECT "userID"::bigint AS user_id,
           date_trunc('month', "createdAt") AS month_start,
           sum(("packPrice" * 100)::bigint)::bigint AS volume_cents,
           count(*) AS purchases,
           max("purchaseID")::bigint AS max_purchase_id
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

# Rows the monthly aggregate leaves out: no time, or a null or negative price (no join needed).
BAD_PURCHASES_SQL = """
SELECT "purchaseID"::bigint AS purchase_id, "userID"::bigint AS user_id,
       CASE WHEN "createdAt" IS NULL THEN 'bad_time' ELSE 'bad_price' END AS kind
FROM purchases
WHERE ("createdAt" < $1::timestamp OR "createdAt" IS NULL)
  AND ("createdAt" IS NULL OR "packPrice" IS NULL OR "packPrice" < 0)
"""

# Purchases of users that do not exist; the users come from the aggregate (a join in Polars),
# their purchases through the userID index, instead of an anti-join over every purchase.
UNKNOWN_BUYER_PURCHASES_SQL = """
SELECT "purchaseID"::bigint AS purchase_id, "userID"::bigint AS user_id, 'unknown_user' AS kind
FROM purchases
WHERE "userID" = ANY($1::bigint[]) AND "createdAt" < $2::timestamp
"""

# The watermark on its own (close records it as the month's input fingerprint).
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
        cursor.execute(COLUMN_TYPES_SQL)
        column_types = dict(cursor.fetchall())
        users = _frame(cursor, users_sql(column_types), (), USER_INPUT_COLUMNS)
        monthly = _frame(cursor, MONTHLY_VOLUMES_SQL, (cut_off,), MONTHLY_VOLUME_COLUMNS)
        candidates = _frame(cursor, PIONEER_CANDIDATES_SQL, (cut_off, min_price), CANDIDATE_COLUMNS)
        bad = _frame(cursor, BAD_PURCHASES_SQL, (cut_off,), PURCHASE_PROBLEM_COLUMNS)
        unknown_buyers = monthly.join(users.select("user_id"), on="user_id", how="anti")["user_id"].unique()
        if unknown_buyers.len():
            ids = "{" + ",".join(str(int(i)) for i in unknown_buyers) + "}"
            bad = pl.concat([bad, _frame(cursor, UNKNOWN_BUYER_PURCHASES_SQL, (ids, cut_off), PURCHASE_PROBLEM_COLUMNS)])
    watermark = Watermark(
        max_purchase_id=max(filter(None, [monthly["max_purchase_id"].max(), bad["purchase_id"].max()]), default=None),
        purchase_count=int(monthly["purchases"].sum()) + bad.filter(pl.col("kind") != "unknown_user").height,
        user_count=users.height,
    )
    read = Inputs(
        users=users,
        monthly_volumes=monthly.select(list(MONTHLY_VOLUME_COLUMNS)),
        pioneer_candidates=candidates,
        purchase_problems=bad.unique("purchase_id", keep="last", maintain_order=True),
    )
    return read, watermark
