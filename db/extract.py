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


# Purchases are memoized per block of purchaseIDs (mlm_purchase_blocks): a nightly run
# aggregates again only the blocks whose rows changed, which one cheap pass tells.
BLOCK_BITS = 16
BLOCK_SIZE = 1 << BLOCK_BITS  # block = purchaseID >> BLOCK_BITS: floor division, negative ids too

# One pass over the purchases up to the cut-off, per block: how many rows, how many bad, the
# newest purchaseID, and an order-free checksum (XOR of one 64-bit hash per row) of every value
# the aggregates read. A block whose count and checksum are as memoized has the same aggregates.
BLOCK_SUMS_SQL = f"""
SELECT "purchaseID"::bigint >> {BLOCK_BITS} AS block,
       count(*) AS purchases,
       count(*) FILTER (WHERE "createdAt" IS NULL OR "packPrice" IS NULL OR "packPrice" < 0) AS bad,
       max("purchaseID")::bigint AS max_purchase_id,
       bit_xor(hashint8extended("purchaseID"::bigint, hashint8extended(COALESCE("userID"::bigint, -1),
           hash_numeric_extended(COALESCE("packPrice", -1), timestamp_hash_extended(COALESCE("createdAt", '-infinity'), 0))))) AS checksum
FROM purchases
WHERE "createdAt" < $1::timestamp OR "createdAt" IS NULL
GROUP BY 1
"""

# The valid purchases of some blocks, per block, user and month (its first day), with each
# group's earliest purchase at or above the pioneer minimum (by time, then purchaseID).
# ``{ranges}``: the blocks' purchaseID ranges, which let the planner read a few recent blocks
# through the primary key (an ``= ANY(blocks)`` test per row would cost more than the sums).
BLOCK_AGGREGATES_SQL = """
SELECT block, user_id, month_start::date AS month, volume_cents, purchases, max_purchase_id,
       candidate[1] AS candidate_at_us, candidate[2] AS candidate_id
FROM (
    SELECT "purchaseID"::bigint >> {block_bits} AS block,
           "userID"::bigint AS user_id,
           date_trunc('month', "createdAt") AS month_start,
           sum(("packPrice" * 100)::bigint)::bigint AS volume_cents,
           count(*) AS purchases,
           max("purchaseID")::bigint AS max_purchase_id,
           min(ARRAY[(extract(epoch FROM "createdAt") * 1000000)::bigint, "purchaseID"::bigint])
               FILTER (WHERE "packPrice" >= $2::numeric) AS candidate
    FROM purchases
    WHERE "createdAt" < $1::timestamp AND "packPrice" >= 0 AND ({ranges})
    GROUP BY 1, 2, 3
) AS per_block_user_month
"""

MEMOIZED_SUMS_SQL = "SELECT block, purchases, checksum, candidate_min_cents FROM mlm_purchase_block_sums"
MEMOIZED_BLOCKS_SQL = """
SELECT block, user_id, month, volume_cents, purchases, max_purchase_id, candidate_at_us, candidate_id
FROM mlm_purchase_blocks WHERE block <> ALL($1::bigint[])
"""

BLOCK_COLUMNS = {
    "block": pl.Int64,
    "user_id": pl.Int64,
    "month": pl.Date,
    "volume_cents": pl.Int64,
    "purchases": pl.Int64,
    "max_purchase_id": pl.Int64,
    "candidate_at_us": pl.Int64,
    "candidate_id": pl.Int64,
}
BLOCK_SUM_COLUMNS = {"block": pl.Int64, "purchases": pl.Int64, "bad": pl.Int64, "max_purchase_id": pl.Int64, "checksum": pl.Int64}

# Rows the block aggregates leave out: no time, or a null or negative price (no join needed).
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
def snapshot(db: Database, *, keep: bool = False):
    """An ADBC cursor inside one REPEATABLE READ transaction: every read sees the same instant.

    The transaction is rolled back at the end, unless ``keep`` asks to commit what it wrote
    (the memoized purchase blocks; nothing else is ever written here).
    """
    with adbc.connect(db.uri) as connection:
        cursor = connection.cursor()
        committed = False
        try:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute("SET LOCAL TIME ZONE 'UTC'")
            # Enough memory to aggregate purchases by hash in one pass; with the default 4 MB
            # the planner walks the userID index instead, several times slower.
            cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
            yield cursor
            if keep:
                connection.commit()
                committed = True
        finally:
            cursor.close()
            if not committed:
                connection.rollback()


def _frame(cursor, sql: str, parameters: tuple, schema: dict) -> pl.DataFrame:
    cursor.execute(sql, parameters=parameters)
    frame = pl.from_arrow(cursor.fetch_arrow_table())
    return frame.cast({name: dtype for name, dtype in schema.items() if name in frame.columns})


def _bigint_array(values) -> str:
    return "{" + ",".join(str(int(v)) for v in values) + "}"


@dataclass(frozen=True)
class PurchaseBlocks:
    """The purchases up to a cut-off as memoized blocks: ``sums`` (one row per block, now),
    ``rows`` (per block, user and month, every block), and which blocks were aggregated again
    (``fresh``) or no longer exist (``gone``)."""

    sums: pl.DataFrame
    rows: pl.DataFrame
    fresh: pl.DataFrame
    fresh_blocks: list[int]
    gone_blocks: list[int]


def stale_blocks(sums: pl.DataFrame, memoized: pl.DataFrame, candidate_min_cents: int) -> tuple[list[int], list[int]]:
    """The blocks whose memo cannot be used (new, changed, or for another pioneer minimum), and
    the memoized blocks that no longer have any purchase up to the cut-off."""
    valid = memoized.filter(pl.col("candidate_min_cents") == candidate_min_cents).select("block", "purchases", "checksum")
    stale = sums.join(valid, on=["block", "purchases", "checksum"], how="anti", nulls_equal=True)["block"].sort().to_list()
    gone = memoized.join(sums, on="block", how="anti")["block"].sort().to_list()
    return stale, gone


def purchase_id_ranges(blocks: list[int]) -> str:
    """SQL for "purchaseID in one of these blocks", one range per run of consecutive blocks."""
    runs = pl.DataFrame({"block": sorted(blocks)}, schema={"block": pl.Int64}).with_columns(
        run=(pl.col("block").diff().fill_null(1) != 1).cum_sum()
    ).group_by("run").agg(first=pl.col("block").min(), last=pl.col("block").max())
    return " OR ".join(
        f'("purchaseID" >= {first * BLOCK_SIZE} AND "purchaseID" < {(last + 1) * BLOCK_SIZE})' for first, last in runs.select("first", "last").sort("first").iter_rows()
    )


def purchase_blocks(cursor, cut_off: str, min_price: str, candidate_min_cents: int) -> PurchaseBlocks:
    """Every block's aggregates: memoized where the block did not change, aggregated again where it did."""
    sums = _frame(cursor, BLOCK_SUMS_SQL, (cut_off,), BLOCK_SUM_COLUMNS)
    memoized = _frame(cursor, MEMOIZED_SUMS_SQL, (), {"block": pl.Int64, "purchases": pl.Int64, "checksum": pl.Int64, "candidate_min_cents": pl.Int64})
    stale, gone = stale_blocks(sums, memoized, candidate_min_cents)
    if stale:
        statement = BLOCK_AGGREGATES_SQL.format(block_bits=BLOCK_BITS, ranges=purchase_id_ranges(stale))
        fresh = _frame(cursor, statement, (cut_off, min_price), BLOCK_COLUMNS)
    else:
        fresh = pl.DataFrame(schema=BLOCK_COLUMNS)
    kept = _frame(cursor, MEMOIZED_BLOCKS_SQL, (_bigint_array(stale + gone),), BLOCK_COLUMNS)
    rows = pl.concat([kept, fresh.select(kept.columns)]) if fresh.height else kept
    return PurchaseBlocks(sums=sums, rows=rows, fresh=fresh, fresh_blocks=stale, gone_blocks=gone)


def remember_blocks(cursor, blocks: PurchaseBlocks, candidate_min_cents: int) -> None:
    """Replace the memo of the blocks that were aggregated again (in the caller's transaction)."""
    replaced = _bigint_array(blocks.fresh_blocks + blocks.gone_blocks)
    cursor.execute("DELETE FROM mlm_purchase_blocks WHERE block = ANY($1::bigint[])", parameters=(replaced,))
    cursor.execute("DELETE FROM mlm_purchase_block_sums WHERE block = ANY($1::bigint[])", parameters=(replaced,))
    if blocks.fresh.height:
        cursor.adbc_ingest("mlm_purchase_blocks", blocks.fresh.to_arrow(), mode="append")
    sums = blocks.sums.filter(pl.col("block").is_in(blocks.fresh_blocks)).with_columns(candidate_min_cents=pl.lit(candidate_min_cents, pl.Int64))
    if sums.height:
        cursor.adbc_ingest("mlm_purchase_block_sums", sums.to_arrow(), mode="append")


def monthly_volumes(rows: pl.DataFrame) -> pl.DataFrame:
    """Valid purchases per user and month: volume (cents), count and newest purchaseID."""
    return rows.group_by("user_id", "month").agg(pl.col("volume_cents").sum(), pl.col("purchases").sum(), pl.col("max_purchase_id").max())


def pioneer_candidates(rows: pl.DataFrame, users: pl.DataFrame) -> pl.DataFrame:
    """Each existing user's earliest purchase at or above the pioneer minimum (by time, then purchaseID)."""
    return (
        rows.filter(pl.col("candidate_id").is_not_null())
        .join(users.select("user_id"), on="user_id", how="semi")
        .sort("user_id", "candidate_at_us", "candidate_id")
        .unique("user_id", keep="first", maintain_order=True)
        .select("user_id", pl.col("candidate_id").alias("purchase_id"), pl.from_epoch("candidate_at_us", time_unit="us").alias("purchased_at"))
    )


def inputs(db: Database, as_of: datetime, pioneer_min_purchase_cents: int, *, remember: bool = False) -> tuple[Inputs, Watermark]:
    """Everything the recompute reads as of the cut-off ``as_of``, and the snapshot's watermark.

    With ``remember``, the purchase blocks aggregated again are memoized for the next run (only
    a run holding the run lock may: two writers of the memo would conflict).
    """
    cut_off = naive_utc(as_of)
    min_price = f"{pioneer_min_purchase_cents // 100}.{pioneer_min_purchase_cents % 100:02d}"
    with snapshot(db, keep=remember) as cursor:
        cursor.execute(COLUMN_TYPES_SQL)
        column_types = dict(cursor.fetchall())
        users = _frame(cursor, users_sql(column_types), (), USER_INPUT_COLUMNS)
        blocks = purchase_blocks(cursor, cut_off, min_price, pioneer_min_purchase_cents)
        monthly = monthly_volumes(blocks.rows)
        candidates = pioneer_candidates(blocks.rows, users).cast(CANDIDATE_COLUMNS)
        # Bad rows are rare: look for them only when the block sums counted some.
        if blocks.sums["bad"].sum():
            bad = _frame(cursor, BAD_PURCHASES_SQL, (cut_off,), PURCHASE_PROBLEM_COLUMNS)
        else:
            bad = pl.DataFrame(schema=PURCHASE_PROBLEM_COLUMNS)
        unknown_buyers = monthly.join(users.select("user_id"), on="user_id", how="anti")["user_id"].unique()
        if unknown_buyers.len():
            bad = pl.concat([bad, _frame(cursor, UNKNOWN_BUYER_PURCHASES_SQL, (_bigint_array(unknown_buyers), cut_off), PURCHASE_PROBLEM_COLUMNS)])
        if remember:
            remember_blocks(cursor, blocks, pioneer_min_purchase_cents)
    watermark = Watermark(
        max_purchase_id=blocks.sums["max_purchase_id"].max(),
        purchase_count=int(blocks.sums["purchases"].sum()),
        user_count=users.height,
    )
    read = Inputs(
        users=users,
        monthly_volumes=monthly.select(list(MONTHLY_VOLUME_COLUMNS)).cast(MONTHLY_VOLUME_COLUMNS),
        pioneer_candidates=candidates,
        purchase_problems=bad.unique("purchase_id", keep="last", maintain_order=True),
    )
    return read, watermark
