"""Read the recompute's inputs from the platform's tables into Polars, in one consistent snapshot.

This is the only module that names the platform's source tables for reading. Everything is read
through ADBC (Arrow, columnar) inside one REPEATABLE READ transaction, so users, purchases and the
watermark all describe the same instant (two connections share it: PostgreSQL runs a statement
on one core, the machine has two). Aggregation happens in SQL where it shrinks the data:
purchases arrive per user and month, not per row, and from a memo of earlier runs for every
month whose purchases did not change (one checksum pass tells which did). JSON columns are read
so that ``json`` and ``jsonb`` columns behave the same.
"""

from __future__ import annotations

import contextlib
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timezone

import adbc_driver_postgresql.dbapi as adbc
import polars as pl

from db.connection import Database
from transforms.fingerprints import HASH_VERSION
from transforms.recompute import (
    CANDIDATE_COLUMNS,
    MONTHLY_VOLUME_COLUMNS,
    PURCHASE_PROBLEM_COLUMNS,
    USER_INPUT_COLUMNS,
    Inputs,
)


@dataclass(frozen=True)
class Watermark:
    """What the snapshot contained: the newest purchase and the row counts before the cut-off,
    and the total of the valid purchases before it (cents; every buyer, known or not)."""

    max_purchase_id: int | None
    purchase_count: int
    user_count: int
    purchase_volume_cents: int | None = None


PIONEER_KEYS = ("hasPioneerBonus", "pioneerGrantedAt", "pioneerPurchaseId")


# What a document's JSON type reads as when its text holds an escaped NUL (``\u0000``).
ESCAPED_NUL = "text with an escaped NUL (\\u0000, which jsonb cannot hold)"


def escaped_nul(text: str) -> str:
    """SQL: JSON ``text`` holds ``\u0000`` (not an escaped backslash before ``u0000``); the
    cheap substring test first, the exact pattern only where it matched."""
    return f"(strpos({text}, '\\u0000') > 0 AND {text} ~ '(^|[^\\\\])(\\\\\\\\)*\\\\u0000')"


def may_be_pioneer(column: str, *, is_json: bool) -> str:
    """SQL that is true for every ``mlmStatus`` in ``column`` that can hold a pioneer grant (or a
    pioneer key), without parsing it. Every platform default document names ``hasPioneerBonus``
    (false), so naming the key is not enough: a grant has the key followed by ``true`` (JSON
    allows only whitespace between; a founder's ``"isFounder": true`` is not one), and the other
    pioneer keys appear only where a grant was written. An escaped key (``\\u``) is let through."""
    if is_json:
        text = f"{column}::text"
        # The substring tests first: the pattern runs only on documents holding both words.
        grant = f"""(strpos({text}, 'hasPioneerBonus') > 0 AND strpos({text}, 'true') > 0 AND {text} ~ '"hasPioneerBonus"\\s*:\\s*true')"""
        # ...and that jsonb can parse (an escaped NUL is bad input, refused by its userID)
        return (
            f"NOT {escaped_nul(text)} AND ({grant} OR "
            + " OR ".join(f"strpos({text}, '{k}') > 0" for k in PIONEER_KEYS[1:])
            + f" OR strpos({text}, '\\u') > 0)"
        )
    return f"""({column} @> '{{"hasPioneerBonus": true}}' OR {column} ?| ARRAY[{", ".join(f"'{k}'" for k in PIONEER_KEYS[1:])}])"""


def may_hold_pioneer_keys(column: str, *, is_json: bool) -> str:
    """SQL that is true for every ``mlmStatus`` in ``column`` that may hold a pioneer key, of any
    shape, without parsing it: wider than :func:`may_be_pioneer`, so that a ``hasPioneerBonus``
    that is neither true nor false is parsed and refused. A platform default document, whose one
    pioneer key is ``"hasPioneerBonus": false`` (as Python's ``json.dumps`` writes it), is not
    parsed; a document naming the key twice is (``jsonb`` keeps the last)."""
    if is_json:
        text = f"{column}::text"
        return (
            " OR ".join(f"strpos({text}, '{k}') > 0" for k in PIONEER_KEYS[1:])
            + f" OR strpos({text}, '\\u') > 0"
            + f""" OR (strpos({text}, 'hasPioneerBonus') > 0 AND NOT (strpos({text}, '"hasPioneerBonus": false') > 0"""
            + f" AND {text} NOT LIKE '%hasPioneerBonus%hasPioneerBonus%'))"
        )
    others = ", ".join(f"'{k}'" for k in PIONEER_KEYS[1:])
    return f"""({column} ?| ARRAY[{others}] OR ({column} ? 'hasPioneerBonus' AND NOT {column} @> '{{"hasPioneerBonus": false}}'))"""


def _whole_number(key: str, largest: int) -> str:
    """SQL: the parsed ``mlmStatus`` (``d.status``) holds ``key`` as a whole number 1..largest."""
    value = f"(d.status ->> '{key}')::numeric"
    # CASE, not AND: only a number may be cast (SQL does not promise to evaluate AND in order).
    return f"CASE WHEN jsonb_typeof(d.status -> '{key}') = 'number' THEN {value} = trunc({value}) AND {value} BETWEEN 1 AND {largest} ELSE false END"


_BIGINT_MAX = 2**63 - 1


def _wrong_type(key: str, legal: str, wanted: str) -> str:
    """SQL: a description of ``key`` when it holds a JSON type other than ``legal`` (or null)."""
    kind = f"jsonb_typeof(d.status -> '{key}')"
    return f"CASE WHEN {kind} NOT IN ('{legal}', 'null') THEN 'mlmStatus.{key} is a ' || {kind} || ', not {wanted}' END"


# The stored pioneer keys the recompute reads, checked for shape: one text per user naming
# every key that is wrong (null when all are right). JSON null counts as an absent key.
BAD_PIONEER_KEYS_SQL = f"""NULLIF(concat_ws('; ',
           {_wrong_type("hasPioneerBonus", "boolean", "true or false")},
           {_wrong_type("pioneerGrantedAt", "string", "an ISO time")},
           CASE WHEN jsonb_typeof(d.status -> 'pioneerPurchaseId') NOT IN ('number', 'null')
                THEN 'mlmStatus.pioneerPurchaseId is a ' || jsonb_typeof(d.status -> 'pioneerPurchaseId') || ', not a purchaseID'
                WHEN jsonb_typeof(d.status -> 'pioneerPurchaseId') = 'number' AND NOT ({_whole_number("pioneerPurchaseId", _BIGINT_MAX)})
                THEN 'mlmStatus.pioneerPurchaseId is a number that is not a purchaseID (a whole number from 1)' END), '')"""


def users_sql(column_types: dict[str, str]) -> str:
    """The users query. A document's JSON type comes from ``json_typeof``, which reads the first
    character of a ``json`` column instead of parsing it. ``mlmStatus`` is parsed only where it
    can hold a pioneer key: few users do, and parsing a million documents costs seconds.

    ``stored_fingerprint``: the fingerprint the last run that compared the user recorded
    (``mlm_user_fingerprints``), only where it is of this ``HASH_VERSION`` and recorded for the
    row version this snapshot reads (nobody wrote the row since); NULL otherwise. The write
    stages only users whose stored fingerprint is NULL or differs from the computed one."""
    is_json = {c: column_types.get(c) == "json" for c in ("mlmStatus", "mlmVolumes", "totalVolume")}

    def type_of(column: str) -> str:
        if not is_json[column]:
            return f'jsonb_typeof(u."{column}")'
        # A json column keeps any text; jsonb refuses an escaped NUL, and so would every later
        # cast of this document, naming no user: such a document is bad input, by its userID.
        return f"""CASE WHEN {escaped_nul(f'u."{column}"::text')} THEN '{ESCAPED_NUL}' ELSE json_typeof(u."{column}") END"""

    may_hold = may_hold_pioneer_keys('u."mlmStatus"', is_json=is_json["mlmStatus"])
    # ``d.status -> key`` is null unless the status is an object: every key below is read only
    # from an object, and only in the shape it must have (a wrong shape is named instead).
    return f"""
SELECT u."userID"::bigint AS user_id,
       u."telegramID"::bigint AS telegram_id,
       u."upline"::bigint AS upline_telegram_id,
       u."rank"::text AS previous_rank,
       CASE WHEN d.status_type = 'object' THEN d.status -> 'hasPioneerBonus' = 'true'::jsonb END AS has_pioneer_bonus,
       CASE WHEN jsonb_typeof(d.status -> 'pioneerGrantedAt') = 'string' THEN d.status ->> 'pioneerGrantedAt' END AS pioneer_granted_at,
       CASE WHEN {_whole_number("pioneerPurchaseId", _BIGINT_MAX)}
            THEN (d.status ->> 'pioneerPurchaseId')::numeric::bigint END AS pioneer_purchase_id,
       CASE WHEN {_whole_number("pioneerNumber", 2**31 - 1)}
            THEN (d.status ->> 'pioneerNumber')::numeric::bigint END AS pioneer_number,
       {BAD_PIONEER_KEYS_SQL} AS bad_pioneer_keys,
       d.status_type AS mlm_status_type,
       {type_of("mlmVolumes")} AS mlm_volumes_type,
       {type_of("totalVolume")} AS total_volume_type,
       {'u."firstname"::text' if "firstname" in column_types else "NULL::text"} AS first_name,
       f.computed_hash AS stored_fingerprint
FROM users AS u
     CROSS JOIN LATERAL (SELECT CASE WHEN {type_of("mlmStatus")} IS DISTINCT FROM '{ESCAPED_NUL}' AND ({may_hold}) THEN u."mlmStatus"::jsonb END AS status,
                     {type_of("mlmStatus")} AS status_type OFFSET 0) AS d
     LEFT JOIN mlm_user_fingerprints AS f
            ON f.user_id = u."userID" AND f.hash_version = {_literal(HASH_VERSION)} AND f.row_version = u."xmin"::text::bigint
"""



COLUMN_TYPES_SQL = """
SELECT column_name::text, data_type::text FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = 'users'
"""


# Purchases are memoized per calendar month (mlm_purchase_months): a run aggregates again only
# the months whose purchases changed (a nightly run: the current one), which one cheap pass tells.

# One pass over the purchases up to the cut-off, per month of ``createdAt`` (NULL: rows without
# a time): how many rows, how many bad, the newest purchaseID, an order-free checksum (XOR of one
# 64-bit hash per row) of every value the aggregates read, and the valid purchases' total in
# cents. A month whose count and checksum are as memoized has the same aggregates. The totals
# are summed apart from the per-user aggregates, so validation can check the stored personal
# totals against them.
MONTH_SUMS_SQL = """
SELECT month_start::date AS month, purchases, bad, max_purchase_id, checksum, volume_cents
FROM (
    SELECT date_trunc('month', "createdAt") AS month_start,
           count(*) AS purchases,
           count(*) FILTER (WHERE "createdAt" IS NULL OR "packPrice" IS NULL OR "packPrice" < 0) AS bad,
           sum(("packPrice" * 100)::bigint) FILTER (WHERE "createdAt" IS NOT NULL AND "packPrice" >= 0)::bigint AS volume_cents,
           max("purchaseID")::bigint AS max_purchase_id,
           bit_xor(hashint8extended("purchaseID"::bigint, hashint8extended(COALESCE("userID"::bigint, -1),
               hash_numeric_extended(COALESCE("packPrice", -1), timestamp_hash_extended(COALESCE("createdAt", '-infinity'), 0))))) AS checksum
    FROM purchases
    WHERE "createdAt" < $1::timestamp OR "createdAt" IS NULL
    GROUP BY 1
) AS per_month
"""

# The valid purchases of some months, per user and month (its first day), with each group's
# earliest purchase at or above the pioneer minimum (by time, then purchaseID).
# ``{ranges}``: the months' ``createdAt`` ranges, one per run of consecutive months.
# The user_id the aggregates give purchases whose "userID" is NULL (where the platform's NOT NULL
# is missing): no user has it (userIDs are serial from 1), so they are an unknown buyer's, found
# every run, memoized like any other (the memo's user_id is NOT NULL).
NO_BUYER = -1

MONTH_AGGREGATES_SQL = """
SELECT user_id, month_start::date AS month, volume_cents, candidate[1] AS candidate_at_us, candidate[2] AS candidate_id
FROM (
    SELECT COALESCE("userID", {no_buyer})::bigint AS user_id,
           date_trunc('month', "createdAt") AS month_start,
           sum(("packPrice" * 100)::bigint)::bigint AS volume_cents,
           min(ARRAY[(extract(epoch FROM "createdAt") * 1000000)::bigint, "purchaseID"::bigint])
               FILTER (WHERE "packPrice" >= $2::numeric) AS candidate
    FROM purchases
    WHERE "createdAt" < $1::timestamp AND "packPrice" >= 0 AND ({ranges})
    GROUP BY 1, 2
) AS per_user_month
"""

MEMOIZED_SUMS_SQL = "SELECT month, purchases, checksum, candidate_min_cents FROM mlm_purchase_month_sums"
MEMOIZED_MONTHS_SQL = """
SELECT user_id, month, volume_cents, candidate_at_us, candidate_id
FROM mlm_purchase_months WHERE month <> ALL($1::date[])
"""

MONTH_COLUMNS = {"user_id": pl.Int64, "month": pl.Date, "volume_cents": pl.Int64, "candidate_at_us": pl.Int64, "candidate_id": pl.Int64}
MONTH_SUM_COLUMNS = {"month": pl.Date, "purchases": pl.Int64, "bad": pl.Int64, "max_purchase_id": pl.Int64, "checksum": pl.Int64, "volume_cents": pl.Int64}
MEMOIZED_SUM_COLUMNS = {"month": pl.Date, "purchases": pl.Int64, "checksum": pl.Int64, "candidate_min_cents": pl.Int64}


# Rows the monthly aggregates leave out: no time, or a null or negative price (no join needed).
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
WHERE ("userID" = ANY($1::bigint[]) OR ($3::boolean AND "userID" IS NULL)) AND "createdAt" < $2::timestamp
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
def snapshot(db: Database, *, keep: bool = False, imported: str | None = None):
    """An ADBC cursor inside one REPEATABLE READ transaction: every read sees the same instant
    (with ``imported``, the instant another transaction exported by ``pg_export_snapshot()``).

    The transaction is rolled back at the end, unless ``keep`` asks to commit what it wrote
    (the memoized purchase months; nothing else is ever written here).
    """
    connection = adbc.connect(db.uri)
    cursor = connection.cursor()
    try:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        if imported:
            cursor.execute(f"SET TRANSACTION SNAPSHOT {_literal(imported)}")
        cursor.execute("SET LOCAL TIME ZONE 'UTC'")
        # Enough memory to aggregate purchases by hash in one pass; with the default 4 MB
        # the planner walks the userID index instead, several times slower.
        cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
        yield cursor
        if keep:
            connection.commit()
    except BaseException:
        # The connection may be what failed (dropped): rolling it back or closing it would fail
        # too and hide the first error, which decides whether the extract is retried. The server
        # rolls back the transaction of a connection it lost.
        _close_quietly(cursor.close, connection.rollback, connection.close)
        raise
    cursor.close()
    if not keep:
        connection.rollback()
    connection.close()


def _close_quietly(*steps) -> None:
    """Run every clean-up step, ignoring their errors (an error is already on its way)."""
    for step in steps:
        with contextlib.suppress(Exception):
            step()


def _literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def with_literals(sql: str, parameters: tuple) -> str:
    """``sql`` with ``$n`` replaced by the n-th parameter as a quoted literal.

    The ADBC driver streams a query without parameters through COPY, but runs a query with bound
    parameters another way, which measured twice as slow on the month sums (11.7 s against 6.0 s
    over 10M purchases). The values are the run's own (cut-off, amounts, id lists), quoted anyway.
    """
    return re.sub(r"\$(\d+)", lambda m: _literal(parameters[int(m.group(1)) - 1]), sql)


def _frame(cursor, sql: str, parameters: tuple, schema: dict) -> pl.DataFrame:
    cursor.execute(with_literals(sql, parameters) if parameters else sql)
    frame = pl.from_arrow(cursor.fetch_arrow_table())
    return frame.cast({name: dtype for name, dtype in schema.items() if name in frame.columns})


def _bigint_array(values) -> str:
    return "{" + ",".join(str(int(v)) for v in values) + "}"


def _date_array(days: list[date]) -> str:
    return "{" + ",".join(d.isoformat() for d in days) + "}"


@dataclass(frozen=True)
class PurchaseMonths:
    """The purchases up to a cut-off, per user and month: ``rows`` (memoized where the month did
    not change, aggregated again where it did), ``sums`` (one row per month, now), which months
    were aggregated again (``fresh``) and which memoized months no longer have a purchase."""

    sums: pl.DataFrame
    rows: pl.DataFrame
    fresh: pl.DataFrame
    fresh_months: list[date]
    gone_months: list[date]


def stale_months(sums: pl.DataFrame, memoized: pl.DataFrame, candidate_min_cents: int) -> tuple[list[date], list[date]]:
    """The months whose memo cannot be used (new, changed, or for another pioneer minimum), and
    the memoized months that no longer have any purchase up to the cut-off."""
    valid = memoized.filter(pl.col("candidate_min_cents") == candidate_min_cents).select("month", "purchases", "checksum")
    dated = sums.filter(pl.col("month").is_not_null())
    stale = dated.join(valid, on=["month", "purchases", "checksum"], how="anti", nulls_equal=True)["month"].sort().to_list()
    gone = memoized.join(dated, on="month", how="anti")["month"].sort().to_list()
    return stale, gone


def created_at_ranges(months: list[date]) -> str:
    """SQL for "createdAt in one of these months", one range per run of consecutive months."""
    runs = (
        pl.DataFrame({"month": months}, schema={"month": pl.Date})
        .sort("month")
        .with_columns(run=(pl.col("month") != pl.col("month").shift(1).dt.offset_by("1mo")).fill_null(True).cum_sum())
        .group_by("run")
        .agg(first=pl.col("month").min(), last=pl.col("month").max().dt.offset_by("1mo"))
        .sort("first")
    )
    return " OR ".join(f"""("createdAt" >= '{first}' AND "createdAt" < '{end}')""" for first, end in runs.select("first", "last").iter_rows())


def balanced_halves(sums: pl.DataFrame, months: list[date]) -> tuple[list[date], list[date]]:
    """``months`` in two groups of about as many purchases each (by the month sums), largest
    month first into the lighter group; the second group is empty for fewer than two months."""
    counts = dict(sums.filter(pl.col("month").is_in(months)).select("month", "purchases").iter_rows())
    halves: tuple[list[date], list[date]] = ([], [])
    loads = [0, 0]
    for month in sorted(months, key=lambda m: -counts.get(m, 0)):
        lighter = 0 if loads[0] <= loads[1] else 1
        halves[lighter].append(month)
        loads[lighter] += counts.get(month, 0)
    return sorted(halves[0]), sorted(halves[1])


def _aggregated(cursor, months: list[date], cut_off: str, min_price: str) -> pl.DataFrame:
    """The purchases of ``months``, aggregated per user and month in SQL."""
    if not months:
        return pl.DataFrame(schema=MONTH_COLUMNS)
    statement = MONTH_AGGREGATES_SQL.format(ranges=created_at_ranges(months), no_buyer=NO_BUYER)
    return _frame(cursor, statement, (cut_off, min_price), MONTH_COLUMNS)


def purchase_months(cursor, helper: "Helper", cut_off: str, min_price: str, candidate_min_cents: int) -> PurchaseMonths:
    """Every month's aggregates: memoized where the month did not change, aggregated again where
    it did. The months to aggregate are split between this connection and the ``helper`` (a
    second connection in the same snapshot), which the server runs on two cores."""
    sums = _frame(cursor, MONTH_SUMS_SQL, (cut_off,), MONTH_SUM_COLUMNS)
    memoized = _frame(cursor, MEMOIZED_SUMS_SQL, (), MEMOIZED_SUM_COLUMNS)
    stale, gone = stale_months(sums, memoized, candidate_min_cents)
    mine, theirs = balanced_halves(sums, stale)
    # The helper takes the other half and the memoized months (a nightly run's largest read),
    # this connection its half (a nightly run's one changed month).
    other = helper.submit(_aggregated, theirs, cut_off, min_price)
    keeping = helper.submit(_frame, MEMOIZED_MONTHS_SQL, (_date_array(stale + gone),), MONTH_COLUMNS)
    fresh = pl.concat([_aggregated(cursor, mine, cut_off, min_price), other.result()])
    kept = keeping.result()
    rows = pl.concat([kept, fresh.select(kept.columns)]) if fresh.height else kept
    return PurchaseMonths(sums=sums, rows=rows, fresh=fresh, fresh_months=stale, gone_months=gone)


class Helper:
    """A second connection reading the same snapshot as the caller's, with one thread to run
    reads on it: ``submit(fn, *args)`` runs ``fn(helper_cursor, *args)`` and returns a future."""

    def __init__(self, pool: ThreadPoolExecutor, cursor):
        self._pool, self._cursor = pool, cursor
        self._failed: BaseException | None = None

    def submit(self, fn, *args):
        return self._pool.submit(self._run, fn, args)

    def _run(self, fn, args):
        # After a failed statement every later one on the connection fails with "the connection
        # is in an error state", and the caller may wait on a later read first: each read after
        # a failure raises the failure itself, which says why.
        if self._failed is not None:
            raise self._failed
        try:
            return fn(self._cursor, *args)
        except BaseException as error:
            self._failed = error
            raise


@contextlib.contextmanager
def helper_in_snapshot(db: Database, cursor):
    """A :class:`Helper` on a second connection that imports ``cursor``'s snapshot."""
    cursor.execute("SELECT pg_export_snapshot()")
    exported = cursor.fetchone()[0]
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The import runs on the helper's own thread, like every later read on that connection.
        opened = contextlib.ExitStack()
        helper_cursor = pool.submit(lambda: opened.enter_context(snapshot(db, imported=exported))).result()
        try:
            yield Helper(pool, helper_cursor)
        except BaseException:
            # The caller's error comes first: the helper's connection may have dropped with it.
            _close_quietly(lambda: pool.submit(opened.close).result())
            raise
        pool.submit(opened.close).result()


def remember_months(cursor, months: PurchaseMonths, candidate_min_cents: int) -> None:
    """Replace the memo of the months that were aggregated again (in the caller's transaction)."""
    replaced = _date_array(months.fresh_months + months.gone_months)
    cursor.execute("DELETE FROM mlm_purchase_months WHERE month = ANY($1::date[])", parameters=(replaced,))
    cursor.execute("DELETE FROM mlm_purchase_month_sums WHERE month = ANY($1::date[])", parameters=(replaced,))
    if months.fresh.height:
        cursor.adbc_ingest("mlm_purchase_months", months.fresh.to_arrow(), mode="append")
    sums = (
        months.sums.filter(pl.col("month").is_in(months.fresh_months))
        .select("month", "purchases", "checksum")
        .with_columns(candidate_min_cents=pl.lit(candidate_min_cents, pl.Int64))
    )
    if sums.height:
        cursor.adbc_ingest("mlm_purchase_month_sums", sums.to_arrow(), mode="append")


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

    With ``remember``, the purchase months aggregated again are memoized for the next run (only
    a run holding the run lock may: two writers of the memo would conflict).
    """
    cut_off = naive_utc(as_of)
    min_price = f"{pioneer_min_purchase_cents // 100}.{pioneer_min_purchase_cents % 100:02d}"
    with snapshot(db, keep=remember) as cursor, helper_in_snapshot(db, cursor) as helper:
        cursor.execute(COLUMN_TYPES_SQL)
        column_types = dict(cursor.fetchall())
        # The users are read on the helper while this connection takes the month sums.
        reading_users = helper.submit(_frame, users_sql(column_types), (), USER_INPUT_COLUMNS)
        months = purchase_months(cursor, helper, cut_off, min_price, pioneer_min_purchase_cents)
        users = reading_users.result()
        monthly = months.rows
        candidates = pioneer_candidates(months.rows, users).cast(CANDIDATE_COLUMNS)
        # Bad rows are rare: look for them only when the month sums counted some.
        if months.sums["bad"].sum():
            bad = _frame(cursor, BAD_PURCHASES_SQL, (cut_off,), PURCHASE_PROBLEM_COLUMNS)
        else:
            bad = pl.DataFrame(schema=PURCHASE_PROBLEM_COLUMNS)
        unknown_buyers = monthly.join(users.select("user_id"), on="user_id", how="anti")["user_id"].unique()
        if unknown_buyers.len():
            no_buyer = bool((unknown_buyers == NO_BUYER).any())
            bad = pl.concat([bad, _frame(cursor, UNKNOWN_BUYER_PURCHASES_SQL, (_bigint_array(unknown_buyers), cut_off, no_buyer), PURCHASE_PROBLEM_COLUMNS)])
        if remember:
            remember_months(cursor, months, pioneer_min_purchase_cents)
    watermark = Watermark(
        max_purchase_id=months.sums["max_purchase_id"].max(),
        purchase_count=int(months.sums["purchases"].sum()),
        user_count=users.height,
        purchase_volume_cents=int(months.sums["volume_cents"].sum()),
    )
    read = Inputs(
        users=users,
        monthly_volumes=monthly.select(list(MONTHLY_VOLUME_COLUMNS)).cast(MONTHLY_VOLUME_COLUMNS),
        pioneer_candidates=candidates,
        purchase_problems=bad.unique("purchase_id", keep="last", maintain_order=True),
    )
    return read, watermark
