"""Read what one user's explanation needs, in one snapshot, without the whole extract: the tree's
links, the inputs of the user's subtree and sponsor chain, their purchases, and whatever the
pioneer order needs company-wide.

What the platform's schema allows (db/platform_schema.py, tests/db/platform_schema.json):

* ``users`` has no index on ``"upline"``. A recursive CTE walking *down* the tree would scan
  ``users`` once per level (the demo tree is 15-40+ levels deep), so the links of every user are
  read once instead, narrow (``userID``, ``telegramID``, ``upline``: one scan), and the subtree
  and the chain are found in Polars (:mod:`transforms.explain`). Walking *up* would use the
  unique ``telegramID`` index, but the links already hold the chain.
* ``purchases`` has no index on ``"userID"``: the subtree's purchases cost one scan of
  ``purchases`` (hashed ``= ANY`` over the subtree's userIDs). The pioneer order is
  company-wide, but only its head decides who holds the open slots: a top-N scan (no aggregate
  over every buyer) keeps the earliest purchases at or above the minimum, enough of them to fill
  the open slots with users of the tree, or none when the stored grants hold every slot; a later
  candidate's own purchase comes from the subtree's scan. When the subtree is most of the tree,
  every purchase is aggregated instead, as the nightly run does.
* The stored pioneer grants sit in ``mlmStatus``: the links scan screens every document for a
  pioneer key without parsing it (the extract's own screen), and only those users' rows are read
  in full, with the subtree's, by the primary key.

The rows come from the extract's own statements (``users_sql``, ``MONTH_AGGREGATES_SQL``), so a
user's inputs here are exactly the nightly run's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from db import extract
from db.connection import Database
from transforms.recompute import CANDIDATE_COLUMNS, MONTHLY_VOLUME_COLUMNS, USER_INPUT_COLUMNS

LINK_COLUMNS = {"user_id": pl.Int64, "telegram_id": pl.Int64, "upline_telegram_id": pl.Int64, "may_be_pioneer": pl.Boolean}


def links_sql(column_types: dict[str, str]) -> str:
    """Every user's tree link, and whether its ``mlmStatus`` may hold a pioneer grant (the
    extract's screen: no document is parsed)."""
    screen = extract.may_be_pioneer('"mlmStatus"', is_json=column_types.get("mlmStatus") == "json")
    return f"""
SELECT "userID"::bigint AS user_id, "telegramID"::bigint AS telegram_id, "upline"::bigint AS upline_telegram_id,
       COALESCE({screen}, false) AS may_be_pioneer
FROM users
"""


def users_by_id_sql(column_types: dict[str, str], user_ids: pl.Series) -> str:
    """The extract's users statement for some users only, found by the primary key."""
    # users_sql ends with its last join: a WHERE on the users' own key follows it.
    return f"""{extract.users_sql(column_types).rstrip()}
WHERE u."userID" = ANY('{extract._bigint_array(user_ids)}'::int[])
"""


def purchases_sql(user_ids: pl.Series | None) -> str:
    """The extract's per-user-month aggregates for ``user_ids`` (None: every buyer)."""
    chosen = "true" if user_ids is None else f""""userID" = ANY('{extract._bigint_array(user_ids)}'::int[])"""
    return extract.MONTH_AGGREGATES_SQL.format(ranges=chosen, no_buyer=extract.NO_BUYER)


# The earliest purchases at or above the pioneer minimum, in the pioneer order (the extract's
# candidate: valid, before the cut-off; a NULL buyer is no user's). A top-N sort of one scan.
EARLIEST_CANDIDATES_SQL = """
SELECT "userID"::bigint AS user_id, "purchaseID"::bigint AS candidate_id,
       (extract(epoch FROM "createdAt") * 1000000)::bigint AS candidate_at_us
FROM purchases
WHERE "createdAt" < $1::timestamp AND "packPrice" >= $2::numeric AND "userID" IS NOT NULL
ORDER BY "createdAt", "purchaseID"
LIMIT {limit}
"""
EARLIEST_COLUMNS = {"user_id": pl.Int64, "candidate_id": pl.Int64, "candidate_at_us": pl.Int64}
# The first try reads this many rows, or so many per open slot (a user may buy several packs
# at or above the minimum); each further try reads 8 times as many.
FIRST_LIMIT = 1024
ROWS_PER_OPEN_SLOT = 4


def earliest_candidates(cursor, cut_off: str, min_price: str, eligible: pl.Series, open_slots: int) -> tuple[pl.DataFrame, tuple[int, int] | None]:
    """The head of the pioneer order: each ``eligible`` user's first purchase at or above the
    minimum (CANDIDATE_COLUMNS), for every such user whose first one comes before the last row
    read, with enough of them to fill ``open_slots``; and that last row's (time in µs, purchaseID),
    the bound the list is complete up to (None: every candidate was read)."""
    if open_slots == 0:  # the stored grants hold every slot: nobody is granted, nothing is read
        return pl.DataFrame(schema=CANDIDATE_COLUMNS), (-1, -1)
    eligible_users = pl.DataFrame({"user_id": eligible.cast(pl.Int64)})
    limit = max(FIRST_LIMIT, ROWS_PER_OPEN_SLOT * open_slots, 1)
    while True:
        rows = extract._frame(cursor, EARLIEST_CANDIDATES_SQL.format(limit=limit), (cut_off, min_price), EARLIEST_COLUMNS)
        firsts = extract.pioneer_candidates(rows, eligible_users)
        if rows.height < limit:
            return firsts, None
        if firsts.height >= open_slots:
            last = rows.row(rows.height - 1, named=True)
            return firsts, (last["candidate_at_us"], last["candidate_id"])
        limit *= 8


# Above this share of all users, the subtree's purchases are read without the userID list: the
# list would be most of the table anyway, and its text megabytes long.
WHOLE_TABLE_SHARE = 0.5


@dataclass(frozen=True)
class Part:
    """What was read: ``links`` (every user: LINK_COLUMNS), ``users`` (USER_INPUT_COLUMNS of the
    users asked for and of every possible stored pioneer), ``monthly_volumes`` (one row per
    buyer and month, of the users asked for), ``candidates`` (first purchases at or above the
    minimum: of the users asked for and of every possible stored pioneer, and the head of the
    pioneer order), ``complete_until`` (the candidates are every eligible user's up to this
    (time in µs, purchaseID); None: everyone's), and the seconds each read took."""

    links: pl.DataFrame
    users: pl.DataFrame
    monthly_volumes: pl.DataFrame
    candidates: pl.DataFrame
    complete_until: tuple[int, int] | None
    seconds: dict[str, float]


def read_links(cursor) -> tuple[pl.DataFrame, dict[str, str]]:
    cursor.execute(extract.COLUMN_TYPES_SQL)
    column_types = dict(cursor.fetchall())
    return extract._frame(cursor, links_sql(column_types), (), LINK_COLUMNS), column_types


def read_part(db: Database, as_of: datetime, pioneer_min_purchase_cents: int, pioneer_slots: int, choose) -> Part:
    """One snapshot: the links first, then ``choose(links)`` (two Series of userIDs: the subtree
    and chain to read in full, and the users of the tree, who may be pioneers), then their
    purchases on a second connection sharing the snapshot while this one reads those users and
    the head of the pioneer order."""
    cut_off = extract.naive_utc(as_of)
    min_price = f"{pioneer_min_purchase_cents // 100}.{pioneer_min_purchase_cents % 100:02d}"
    seconds: dict[str, float] = {}
    head, complete_until = pl.DataFrame(schema=CANDIDATE_COLUMNS), None
    with extract.snapshot(db) as cursor, extract.helper_in_snapshot(db, cursor) as helper:
        started = time.perf_counter()
        links, column_types = read_links(cursor)
        seconds["links"] = time.perf_counter() - started
        chosen, in_tree = choose(links)
        chosen, in_tree = chosen.cast(pl.Int64), in_tree.cast(pl.Int64)
        whole = chosen.len() > WHOLE_TABLE_SHARE * max(links.height, 1)
        # A stored grant without its time or purchase takes them from its own first purchase.
        wanted = pl.concat([chosen, links.filter(pl.col("may_be_pioneer"))["user_id"]]).unique().sort()
        started = time.perf_counter()
        reading = helper.submit(_timed, extract._frame, purchases_sql(None if whole else wanted), (cut_off, min_price), extract.MONTH_COLUMNS)
        if whole:  # most users: one scan, not a key lookup each
            users = extract._frame(cursor, extract.users_sql(column_types), (), USER_INPUT_COLUMNS).filter(pl.col("user_id").is_in(wanted.implode()))
        else:
            users = extract._frame(cursor, users_by_id_sql(column_types, wanted), (), USER_INPUT_COLUMNS)
        seconds["users"] = time.perf_counter() - started
        if not whole:  # every purchase is aggregated otherwise, candidates included
            started = time.perf_counter()
            stored = users.filter(pl.col("has_pioneer_bonus").fill_null(False))["user_id"]
            eligible = in_tree.filter(~in_tree.is_in(stored.implode()))
            head, complete_until = earliest_candidates(cursor, cut_off, min_price, eligible, max(0, pioneer_slots - stored.len()))
            seconds["pioneer_order"] = time.perf_counter() - started
        months, seconds["purchases"] = reading.result()
    own = extract.pioneer_candidates(months, links)
    candidates = pl.concat([head.cast(CANDIDATE_COLUMNS), own.cast(CANDIDATE_COLUMNS)]).unique("user_id", keep="first").sort("purchased_at", "purchase_id")
    volumes = months.filter(pl.col("user_id").is_in(chosen.implode())).select(list(MONTHLY_VOLUME_COLUMNS)).cast(MONTHLY_VOLUME_COLUMNS)
    return Part(links=links, users=users, monthly_volumes=volumes, candidates=candidates, complete_until=complete_until, seconds=seconds)


def _timed(cursor, fn, *args):
    started = time.perf_counter()
    result = fn(cursor, *args)
    return result, time.perf_counter() - started


STORED_ROW_SQL = """
SELECT "rank"::text AS rank, "isActive" AS is_active, ("fullVolume" * 100)::bigint AS full_volume_cents,
       ("personalVolumeTotal" * 100)::bigint AS personal_volume_total_cents,
       "mlmStatus"::text AS mlm_status, "mlmVolumes"::text AS mlm_volumes, "totalVolume"::text AS total_volume
FROM users WHERE "userID" = %s
"""


def stored_row(db: Database, user_id: int) -> dict | None:
    """What is stored for one user today: the scalar columns and the three documents as text."""
    with db.connect_raw() as connection:
        connection.read_only = True
        cursor = connection.execute(STORED_ROW_SQL, [user_id])
        row = cursor.fetchone()
        if row is None:
            return None
        return dict(zip([c.name for c in cursor.description], row))
