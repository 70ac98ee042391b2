"""Month-end close and the platform's shared ``monthly_stats``: a close creates a user's row for
the month or fills its volume columns, never deletes one nor touches the platform's money; and
the close's fingerprint fits at a real platform's sizes. Values are read back from PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from db import extract
from db.scenario_data import insert_platform_rows

ROOT = 9000
NOW = datetime(2025, 11, 20, tzinfo=timezone.utc)
USERS = [
    {"userID": 1, "telegramID": 9000, "upline": 9000, "rank": "start"},
    {"userID": 2, "telegramID": 9001, "upline": 9000, "rank": "start"},
    {"userID": 3, "telegramID": 9002, "upline": 9001, "rank": "start"},
    {"userID": 4, "telegramID": 9003, "upline": 9001, "rank": "start"},
]
# User 2 qualifies for builder in September (PV 1,000, two active legs of 30,000 and 25,000).
PURCHASES = [
    {"purchaseID": 1, "userID": 2, "packPrice": "300.00", "createdAt": "2025-08-05T10:00:00"},
    {"purchaseID": 2, "userID": 2, "packPrice": "700.00", "createdAt": "2025-09-05T10:00:00"},
    {"purchaseID": 3, "userID": 3, "packPrice": "30000.00", "createdAt": "2025-09-06T10:00:00"},
    {"purchaseID": 4, "userID": 4, "packPrice": "25000.00", "createdAt": "2025-09-07T10:00:00"},
]
# The platform's own row for user 2 in September (its monthly job ran before the close), and one
# for August that the close of September must not touch.
PLATFORM_ROWS = [
    (501, 2, "2025-09", "0.00", "0.00", "123.45", "10.00", "7.50"),
    (502, 2, "2025-08", "300.00", "0.00", "1.00", "2.00", "3.00"),
]
# Bonuses: user 3 earned 12.34 + 0.66 + 1.00 in September (its edges included), and some just
# outside it; user 2's September bonuses do not matter (its row is the platform's).
BONUSES = [
    (1, 3, "12.34", "2025-09-10 12:00:00"),
    (2, 3, "0.66", "2025-09-30 23:59:59.999999"),
    (3, 3, "1.00", "2025-09-01 00:00:00"),
    (4, 3, "50.00", "2025-08-31 23:59:59.999999"),
    (5, 3, "60.00", "2025-10-01 00:00:00"),
    (6, 2, "99.00", "2025-09-15 00:00:00"),
]
STATS_COLUMNS = (
    '"statsID", "userID", "personalVolume"::text, "teamVolume"::text, "activePartnersCount", "directReferralsCount", '
    '"totalTeamSize", "activeRank", "wasActive", "commissionsEarned"::text, "bonusesEarned"::text, "globalPoolEarned"::text'
)
STATS_NAMES = (
    "statsID", "userID", "personalVolume", "teamVolume", "activePartnersCount", "directReferralsCount",
    "totalTeamSize", "activeRank", "wasActive", "commissionsEarned", "bonusesEarned", "globalPoolEarned",
)  # fmt: skip


@pytest.fixture
def platform(db, monkeypatch, prefect_server):
    insert_platform_rows(db, USERS, PURCHASES)
    with db.connect_raw() as c:
        c.cursor().executemany(
            """INSERT INTO monthly_stats ("statsID", "createdAt", "userID", "month", "personalVolume", "teamVolume",
                   "commissionsEarned", "bonusesEarned", "globalPoolEarned")
               VALUES (%s, '2025-10-01 00:05:00', %s, %s, %s, %s, %s, %s, %s)""",
            PLATFORM_ROWS,
        )
        c.cursor().executemany(
            """INSERT INTO bonuses ("bonusID", "userID", "bonusRate", "bonusAmount", "createdAt") VALUES (%s, %s, 0.04, %s, %s)""",
            BONUSES,
        )
    monkeypatch.setenv("MLM_DATABASE_URL", db.uri)
    monkeypatch.setenv("MLM_ROOT_TELEGRAM_ID", str(ROOT))
    return db


def _stats(db, month: str) -> dict[int, dict]:
    """The month's monthly_stats rows by userID (one each, asserted), money as exact text."""
    with db.connect_raw() as c:
        rows = c.execute(f'SELECT {STATS_COLUMNS} FROM monthly_stats WHERE "month" = %s ORDER BY "userID"', [month]).fetchall()
    assert len({r[1] for r in rows}) == len(rows), "two monthly_stats rows for one user and month"
    return {r[1]: dict(zip(STATS_NAMES, r)) for r in rows}


def _platform_money(row: dict) -> tuple:
    return row["commissionsEarned"], row["bonusesEarned"], row["globalPoolEarned"]


def test_close_keeps_the_platforms_row_and_creates_the_others(platform):
    from flows.periods import close

    outcome = close("2025-09", now=NOW)
    assert outcome["monthly_stats_updated"] == 1 and outcome["monthly_stats_inserted"] == 2
    stats = _stats(platform, "2025-09")
    assert set(stats) == {2, 3, 4}  # no row for the root
    # The platform's row: the same row (not deleted and inserted again), its money untouched,
    # its volume columns filled.
    mine = stats[2]
    assert mine["statsID"] == 501 and _platform_money(mine) == ("123.45", "10.00", "7.50")
    assert (mine["personalVolume"], mine["activeRank"], mine["wasActive"]) == ("700.00", "builder", 1)
    assert (mine["activePartnersCount"], mine["directReferralsCount"], mine["totalTeamSize"]) == (2, 2, 2)
    # New rows: commissions are the month's bonuses ([1st, next 1st) UTC); the other money is the platform's to fill.
    assert _platform_money(stats[3]) == ("14.00", None, None)
    assert _platform_money(stats[4]) == ("0.00", None, None)
    assert (stats[3]["personalVolume"], stats[3]["wasActive"], stats[3]["activeRank"], stats[3]["totalTeamSize"]) == ("30000.00", 1, "start", 0)
    with platform.connect_raw() as c:
        assert c.execute("""SELECT count(*) FROM monthly_stats WHERE "month" = '2025-09' AND "createdAt" IS NULL""").fetchone()[0] == 0
        august = c.execute(f"""SELECT {STATS_COLUMNS} FROM monthly_stats WHERE "month" = '2025-08'""").fetchall()
    assert august == [(502, 2, "300.00", "0.00", None, None, None, None, None, "1.00", "2.00", "3.00")]


def test_team_volume_is_the_qualifying_volume(platform):
    from flows.periods import close

    with platform.connect_raw() as c:
        # A third leg under user 2 large enough to be capped for growth (half of 250,000).
        c.execute("""INSERT INTO users ("userID", "telegramID", "upline", "rank", "fullVolume", "personalVolumeTotal") VALUES (5, 9004, 9001, 'start', 0, 0)""")
        c.execute(
            """INSERT INTO purchases ("purchaseID", "userID", "optionID", "projectID", "packQty", "packPrice", "createdAt")
               VALUES (5, 5, 1, 1, 1, 200000.00, '2025-09-08 10:00')"""
        )
    close("2025-09", now=NOW)
    with platform.connect_raw() as c:
        pairs = c.execute(
            """SELECT m."userID", m."teamVolume", s.qualifying_volume, s.full_volume FROM monthly_stats AS m
               JOIN mlm_period_snapshots AS s ON s.period = m."month" AND s.user_id = m."userID"
               WHERE m."month" = '2025-09' ORDER BY 1"""
        ).fetchall()
    assert [p[0] for p in pairs] == [2, 3, 4, 5]
    assert all(team == qualifying for _, team, qualifying, _ in pairs)
    # User 2: legs 30,000 + 25,000 + min(200,000, 125,000), not its full volume 255,000.
    assert pairs[0][1:] == (Decimal("180000.00"), Decimal("180000.00"), Decimal("255000.00"))


def test_reopen_and_close_again_keep_the_platforms_columns(platform):
    from flows.periods import close, reopen

    close("2025-09", now=NOW)
    before = _stats(platform, "2025-09")
    with platform.connect_raw() as c:
        # The platform's later jobs fill the money of the row the close created for user 3 ...
        c.execute("""UPDATE monthly_stats SET "commissionsEarned" = 20.00, "bonusesEarned" = 5.25, "globalPoolEarned" = 1.10 WHERE "userID" = 3 AND "month" = '2025-09'""")
        # ... and a late September purchase of user 4 arrives, which is why the month is reopened.
        c.execute(
            """INSERT INTO purchases ("purchaseID", "userID", "optionID", "projectID", "packQty", "packPrice", "createdAt")
               VALUES (6, 4, 1, 1, 1, 150.00, '2025-09-29 10:00')"""
        )
    reopen("2025-09", reason="late purchase", actor="ops")
    outcome = close("2025-09", now=NOW)
    after = _stats(platform, "2025-09")
    assert set(after) == {2, 3, 4} and outcome["monthly_stats_inserted"] == 0
    assert {u: r["statsID"] for u, r in after.items()} == {u: r["statsID"] for u, r in before.items()}
    assert _platform_money(after[2]) == ("123.45", "10.00", "7.50")
    assert _platform_money(after[3]) == ("20.00", "5.25", "1.10")
    assert _platform_money(after[4]) == ("0.00", None, None)
    assert after[4]["personalVolume"] == "25150.00" and before[4]["personalVolume"] == "25000.00"
    # Only rows whose volume columns moved were written: user 4's, and user 2's (its team grew).
    assert outcome["monthly_stats_updated"] == 2


def test_close_fingerprint_with_eight_digit_purchase_ids(platform):
    from flows.periods import close

    with platform.connect_raw() as c:
        c.execute(
            """INSERT INTO purchases ("purchaseID", "userID", "optionID", "projectID", "packQty", "packPrice", "createdAt")
               VALUES (87654321, 4, 1, 1, 1, 10.00, '2025-09-28 10:00')"""
        )
        # Two-digit users: the fingerprint is then 65 characters, one more than the old varchar(64).
        c.execute(
            """INSERT INTO users ("userID", "telegramID", "upline", "rank", "fullVolume", "personalVolumeTotal")
               SELECT n, 9000 + n, 9003, 'start', 0, 0 FROM generate_series(5, 10) AS n"""
        )
    close("2025-09", now=NOW)
    with platform.connect_raw() as c:
        stored = c.execute("SELECT input_fingerprint FROM mlm_periods WHERE period = '2025-09' AND is_closed").fetchone()[0]
    assert stored == "plan=default-2025.1;max_purchase_id=87654321;purchases=5;users=10" and len(stored) > 64


def test_close_fingerprint_at_millions_of_purchases(platform, monkeypatch):
    from flows.periods import close

    # The watermark as the query reports it on a platform of 1.2M users and 12M purchases
    # (inserting them would take minutes); everything after the query is the real close.
    monkeypatch.setattr(
        extract,
        "WATERMARK_SQL",
        "SELECT 99999999::bigint, 12345678::bigint, 1234567::bigint WHERE $1::timestamp IS NOT NULL",
    )
    close("2025-09", now=NOW)
    expected = "plan=default-2025.1;max_purchase_id=99999999;purchases=12345678;users=1234567"
    with platform.connect_raw() as c:
        stored = c.execute("SELECT input_fingerprint FROM mlm_periods WHERE period = '2025-09' AND is_closed").fetchone()[0]
    assert len(expected) > 64 and stored == expected
