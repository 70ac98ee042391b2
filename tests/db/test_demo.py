"""The demo platform has the documented shape, read back from PostgreSQL after the COPY load.

One ~10k-user demo is generated and loaded once for the module (the shape checks only read);
the refusal check gets its own fresh database from the ``db`` fixture.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from db.connection import scratch_database
from db.demo import PACK_PRICES_USD, DemoData, demo_frames, generate_and_load, load_demo

USERS = 10_000
MONTHS = 3
SEED = 20251031
END_MONTH = "2025-10"


@pytest.fixture(scope="module")
def demo() -> DemoData:
    """The module's demo frames: ~10k users, 3 months ending 2025-10."""
    return demo_frames(USERS, MONTHS, SEED, end_month=END_MONTH)


@pytest.fixture(scope="module")
def loaded(server_uri, template_name, demo):
    """A fresh migrated database (like the ``db`` fixture) holding the module's demo, shared by read-only tests."""
    with scratch_database(server_uri, prefix="mlm_test_demo", template=template_name) as database:
        load_demo(database, demo)
        with database.connect_raw() as conn:
            yield conn


def scalar(conn, query: str, *params):
    """The single value a query returns."""
    return conn.execute(query, params).fetchone()[0]


# The depth of every user below the root (root at 0), walking the tree by telegramID.
DEPTHS = """
    WITH RECURSIVE tree AS (
        SELECT "userID", "telegramID", 0 AS depth FROM users WHERE "upline" = "telegramID"
        UNION ALL
        SELECT child."userID", child."telegramID", tree.depth + 1
        FROM users child JOIN tree ON child."upline" = tree."telegramID"
        WHERE child."upline" <> child."telegramID" AND tree.depth < 10000
    )
"""


def test_the_loaded_tables_hold_every_generated_row(loaded, demo):
    assert scalar(loaded, "SELECT count(*) FROM users") == demo.users.height == USERS
    assert scalar(loaded, "SELECT count(*) FROM purchases") == demo.purchases.height
    frame_total = demo.purchases.select(pl.col("packPrice").cast(pl.Decimal(14, 2)).sum()).item()
    assert scalar(loaded, 'SELECT sum("packPrice") FROM purchases') == frame_total
    # Roughly purchases_per_user (10) purchases per user over the period.
    assert 8 <= demo.purchases.height / USERS <= 12


def test_exactly_one_root_user_1_whose_upline_is_itself(loaded):
    roots = loaded.execute('SELECT "userID", "telegramID" FROM users WHERE "upline" = "telegramID"').fetchall()
    assert roots == [(1, 1_000_000_000)]


def test_every_upline_is_an_existing_telegram_id_never_a_user_id(loaded):
    orphans = scalar(
        loaded,
        'SELECT count(*) FROM users u WHERE NOT EXISTS (SELECT 1 FROM users s WHERE s."telegramID" = u."upline")',
    )
    assert orphans == 0
    assert scalar(loaded, 'SELECT count(*) FROM users WHERE "upline" IS NULL') == 0
    assert scalar(loaded, 'SELECT count(DISTINCT "telegramID") FROM users') == USERS
    assert scalar(loaded, 'SELECT count(*) FROM users WHERE "telegramID" = "userID"') == 0


def test_the_root_reaches_every_user_once_so_there_are_no_cycles(loaded):
    reached, distinct, max_depth, beyond_50 = loaded.execute(
        DEPTHS + 'SELECT count(*), count(DISTINCT "userID"), max(depth), count(*) FILTER (WHERE depth > 50) FROM tree'
    ).fetchone()
    assert reached == distinct == USERS
    assert max_depth >= 20
    assert beyond_50 > 0


def test_the_tree_itself_is_deep_not_only_the_long_chains(loaded):
    # The explicit chains hold ~2% of the users, so the 90th percentile depth is the tree's own.
    p90 = scalar(loaded, DEPTHS + "SELECT percentile_disc(0.9) WITHIN GROUP (ORDER BY depth) FROM tree")
    assert p90 >= 15


def test_referrals_are_skewed_a_few_hubs_most_users_none(loaded):
    top, median, hubs = loaded.execute(
        """
        WITH referrals AS (
            SELECT s."userID", count(c."userID") AS n
            FROM users s
            LEFT JOIN users c ON c."upline" = s."telegramID" AND c."userID" <> s."userID"
            GROUP BY s."userID"
        )
        SELECT max(n), percentile_disc(0.5) WITHIN GROUP (ORDER BY n), count(*) FILTER (WHERE n >= 100)
        FROM referrals
        """
    ).fetchone()
    assert top >= 100
    assert median == 0
    assert hubs >= 2


def test_purchases_cover_exactly_the_window_months(loaded):
    months = [row[0] for row in loaded.execute(
        """SELECT DISTINCT to_char("createdAt", 'YYYY-MM') FROM purchases ORDER BY 1"""
    )]
    assert months == ["2025-08", "2025-09", "2025-10"]
    first, last = loaded.execute('SELECT min("createdAt"), max("createdAt") FROM purchases').fetchone()
    assert first >= datetime(2025, 8, 1) and last < datetime(2025, 11, 1)


def test_purchases_follow_their_user_and_ids_follow_time(loaded):
    early = scalar(
        loaded,
        'SELECT count(*) FROM purchases p JOIN users u USING ("userID") WHERE p."createdAt" < u."createdAt"',
    )
    assert early == 0
    orphans = 'SELECT count(*) FROM purchases p LEFT JOIN users u USING ("userID") WHERE u."userID" IS NULL'
    assert scalar(loaded, orphans) == 0
    out_of_order = scalar(
        loaded,
        """
        SELECT count(*) FROM (
            SELECT "createdAt" < lag("createdAt") OVER (ORDER BY "purchaseID") AS backwards FROM purchases
        ) t WHERE backwards
        """,
    )
    assert out_of_order == 0


def test_prices_are_packs_skewed_small_with_many_pioneer_candidates(loaded):
    prices = {row[0] for row in loaded.execute('SELECT DISTINCT "packPrice" FROM purchases')}
    assert prices <= {Decimal(usd) for usd in PACK_PRICES_USD}
    assert scalar(loaded, 'SELECT count(DISTINCT "userID") FROM purchases WHERE "packPrice" >= 5000') > 50
    small, large = loaded.execute(
        """
        SELECT count(*) FILTER (WHERE "packPrice" <= 200), count(*) FILTER (WHERE "packPrice" >= 5000)
        FROM purchases
        """
    ).fetchone()
    assert small > 10 * large


def test_some_users_buy_every_month_and_many_skip_months(loaded):
    every_month, idle = loaded.execute(
        """
        WITH months AS (
            SELECT u."userID", count(DISTINCT date_trunc('month', p."createdAt")) AS n
            FROM users u LEFT JOIN purchases p USING ("userID")
            GROUP BY u."userID"
        )
        SELECT count(*) FILTER (WHERE n = 3), count(*) FILTER (WHERE n < 3) FROM months
        """
    ).fetchone()
    assert every_month > 0.05 * USERS
    assert idle > 0.5 * USERS


@pytest.mark.parametrize(
    "column, keys",
    [
        ("mlmVolumes", ["monthlyPV", "personalTotal", "graceDayStreak", "lastGraceDayMonth"]),
        ("mlmStatus", ["isFounder", "founderGrantedAt", "founderGrantedBy"]),
        ("totalVolume", ["fullVolume", "qualifyingVolume", "branches", "calculatedAt"]),
        ("personalData", ["firstName"]),
        ("emailVerification", ["verified"]),
        ("settings", ["language"]),
    ],
)
def test_documents_are_mostly_null_and_the_rest_carry_their_keys(loaded, column, keys):
    stored = scalar(loaded, f'SELECT count(*) FROM users WHERE "{column}" IS NOT NULL')
    assert 0 < stored < 0.1 * USERS
    with_keys = scalar(
        loaded,
        f'SELECT count(*) FROM users WHERE "{column}"::jsonb ?& %s',
        keys,
    )
    assert with_keys > 0


def test_foreign_keys_the_recompute_must_keep_are_present(loaded):
    autoship = scalar(
        loaded, """SELECT count(*) FROM users WHERE "mlmVolumes"::jsonb -> 'autoship' ? 'amount'"""
    )
    assert autoship > 0
    assigned = loaded.execute(
        """
        SELECT "rank", "mlmStatus"::jsonb ->> 'assignedRank', "mlmStatus"::jsonb ? 'assignedBy',
               "mlmStatus"::jsonb ? 'assignedAt'
        FROM users WHERE "mlmStatus"::jsonb ? 'assignedRank'
        """
    ).fetchall()
    assert 1 <= len(assigned) <= 10
    assert all(rank == assigned_rank and by and at for rank, assigned_rank, by, at in assigned)
    # Ranks other than start are exactly the assigned ones; the root is start.
    assert scalar(loaded, """SELECT count(*) FROM users WHERE "rank" <> 'start'""") == len(assigned)
    assert scalar(loaded, 'SELECT "rank" FROM users WHERE "userID" = 1') == "start"
    stale_scalars = scalar(loaded, """SELECT count(*) FROM users WHERE "personalVolumeTotal" > 0""")
    assert stale_scalars > 0


def test_id_sequences_continue_after_the_loaded_ids(loaded):
    for table, column in (("users", "userID"), ("purchases", "purchaseID")):
        sequence = scalar(loaded, "SELECT pg_get_serial_sequence(%s, %s)", table, column)
        assert sequence is not None
        last_value = scalar(loaded, f"SELECT last_value FROM {sequence}")
        assert last_value == scalar(loaded, f'SELECT max("{column}") FROM {table}')


def test_the_same_seed_gives_identical_frames_and_another_seed_does_not(demo):
    again = demo_frames(USERS, MONTHS, SEED, end_month=END_MONTH)
    assert_frame_equal(again.users, demo.users)
    assert_frame_equal(again.purchases, demo.purchases)
    other = demo_frames(USERS, MONTHS, SEED + 1, end_month=END_MONTH)
    assert not other.users.equals(demo.users)
    assert not other.purchases.equals(demo.purchases)


def test_money_is_rendered_from_cents_as_decimal_text(demo):
    assert demo.purchases.schema["packPrice"] == pl.String
    assert demo.purchases["packPrice"].str.contains(r"^\d+\.\d\d$").all()
    assert demo.users["fullVolume"].str.contains(r"^\d+\.\d\d$").all()


def test_loading_into_a_table_with_rows_is_refused(db):
    generate_and_load(db, users=200, months=2, seed=1)
    with db.connect_raw() as conn:
        before = conn.execute("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM purchases)").fetchone()
    with pytest.raises(ValueError, match="already has rows"):
        generate_and_load(db, users=200, months=2, seed=2)
    with db.connect_raw() as conn:
        after = conn.execute("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM purchases)").fetchone()
        indexes = {row[0] for row in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'purchases'")}
    assert after == before
    assert any("userID" in name for name in indexes)  # the deferred index is back


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="YYYY-MM"):
        demo_frames(10, 1, 1, end_month="2025-13")
    with pytest.raises(ValueError, match="users"):
        demo_frames(0, 1, 1)
