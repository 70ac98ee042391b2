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
  ``purchases`` (hashed ``= ANY`` over the subtree's userIDs). The same scan takes every
  purchase at or above the pioneer minimum, so each user's first qualifying purchase (the
  pioneer order is company-wide) comes from it too.
* The stored pioneer grants sit in ``mlmStatus``: the links scan screens every document for a
  pioneer key without parsing it (the extract's own screen), and only those users' rows are read
  in full, with the subtree's, by the primary key.

The rows come from the extract's own statements (``users_sql``, ``MONTH_AGGREGATES_SQL``), so a
user's inputs here are exactly the nightly run's.
"""

from __future__ import annotations

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
    """The extract's per-user-month aggregates for ``user_ids`` (None: every buyer), and for
    everyone else only the purchases at or above the pioneer minimum (their candidates)."""
    if user_ids is None:
        chosen = "true"
    else:
        chosen = f"""("userID" = ANY('{extract._bigint_array(user_ids)}'::int[]) OR "packPrice" >= $2::numeric)"""
    return extract.MONTH_AGGREGATES_SQL.format(ranges=chosen, no_buyer=extract.NO_BUYER)


# Above this share of all users, the subtree's purchases are read without the userID list: the
# list would be most of the table anyway, and its text megabytes long.
WHOLE_TABLE_SHARE = 0.5


@dataclass(frozen=True)
class Part:
    """What was read: ``links`` (every user: LINK_COLUMNS), ``users`` (USER_INPUT_COLUMNS of the
    users asked for and of every possible stored pioneer), ``months`` (one row per buyer and
    month: the subtree's buyers in full, others' purchases at or above the pioneer minimum only),
    ``candidates`` (each existing user's first purchase at or above the minimum), and the
    seconds each read took."""

    links: pl.DataFrame
    users: pl.DataFrame
    monthly_volumes: pl.DataFrame
    candidates: pl.DataFrame
    seconds: dict[str, float]


def read_links(cursor) -> tuple[pl.DataFrame, dict[str, str]]:
    cursor.execute(extract.COLUMN_TYPES_SQL)
    column_types = dict(cursor.fetchall())
    return extract._frame(cursor, links_sql(column_types), (), LINK_COLUMNS), column_types


def read_part(db: Database, as_of: datetime, pioneer_min_purchase_cents: int, choose) -> Part:
    """One snapshot: the links first, then ``choose(links)`` (a Series of userIDs: the subtree
    and chain to read in full), then those users and their purchases, the purchases on a second
    connection sharing the snapshot while this one reads the users."""
    import time

    cut_off = extract.naive_utc(as_of)
    min_price = f"{pioneer_min_purchase_cents // 100}.{pioneer_min_purchase_cents % 100:02d}"
    seconds: dict[str, float] = {}
    with extract.snapshot(db) as cursor, extract.helper_in_snapshot(db, cursor) as helper:
        started = time.perf_counter()
        links, column_types = read_links(cursor)
        seconds["links"] = time.perf_counter() - started
        chosen = choose(links).cast(pl.Int64)
        whole = chosen.len() > WHOLE_TABLE_SHARE * max(links.height, 1)
        started = time.perf_counter()
        reading = helper.submit(_timed, extract._frame, purchases_sql(None if whole else chosen), (cut_off, min_price), extract.MONTH_COLUMNS)
        wanted = pl.concat([chosen, links.filter(pl.col("may_be_pioneer"))["user_id"]]).unique().sort()
        users = extract._frame(cursor, users_by_id_sql(column_types, wanted), (), USER_INPUT_COLUMNS)
        seconds["users"] = time.perf_counter() - started
        months, seconds["purchases"] = reading.result()
    candidates = extract.pioneer_candidates(months, links).cast(CANDIDATE_COLUMNS)
    volumes = months.filter(pl.col("user_id").is_in(chosen.implode())).select(list(MONTHLY_VOLUME_COLUMNS)).cast(MONTHLY_VOLUME_COLUMNS)
    return Part(links=links, users=users, monthly_volumes=volumes, candidates=candidates, seconds=seconds)


def _timed(cursor, fn, *args):
    import time

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
