"""Volumes that the written columns cannot hold are refused naming the users, or left out."""

from __future__ import annotations

import pytest

from db.scenario_data import insert_platform_rows
from flows import cli
from tests.db.small_platform import PURCHASES, USERS

# numeric(12,2) holds this price, but two of them add up past personalVolumeTotal's width
HUGE = "9999999999.99"
BUYER = 3  # below the founder (2), below the root (1)


@pytest.fixture
def huge_buyer(db, monkeypatch):
    purchases = PURCHASES + [{"purchaseID": 10 + i, "userID": BUYER, "packPrice": HUGE, "createdAt": "2025-10-04T10:00:00"} for i in range(2)]
    insert_platform_rows(db, USERS, purchases)
    monkeypatch.setenv("MLM_DATABASE_URL", db.uri)
    monkeypatch.setenv("MLM_ROOT_TELEGRAM_ID", "9000")
    return db


def stored(db) -> dict[int, tuple]:
    with db.connect_raw() as connection:
        rows = connection.execute('SELECT "userID", "personalVolumeTotal"::text, "fullVolume"::text, "mlmVolumes"::text FROM users').fetchall()
    return {row[0]: row[1:] for row in rows}


def test_an_overflowing_volume_is_refused_naming_the_users_and_nothing_is_written(huge_buyer, capsys):
    before = stored(huge_buyer)
    assert cli.main(["run", "--as-of", "2025-10-20T00:00:00Z", "--any-cut-off"]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "value_overflow" in err and "personalVolumeTotal is numeric(12,2)" in err
    assert f"userID {BUYER})" in err  # the buyer's own total
    assert "teamVolumeTotal" in err and "userID 1, 2)" in err  # the uplines' team volumes
    assert "Traceback" not in err
    assert stored(huge_buyer) == before
    with huge_buyer.connect_raw() as connection:
        status, error = connection.execute("SELECT status, error FROM mlm_runs ORDER BY run_id DESC LIMIT 1").fetchone()
    assert status == "refused" and "value_overflow" in error


def test_under_quarantine_the_overflowing_users_keep_their_rows_and_the_others_are_written(huge_buyer, capsys):
    # a user beside the huge buyer's line, directly below the root, with an ordinary purchase
    insert_platform_rows(
        huge_buyer,
        [{"userID": 4, "telegramID": 9003, "upline": 9000, "rank": "start", "createdAt": "2025-01-01T00:00:00"}],
        [{"purchaseID": 20, "userID": 4, "packPrice": "300.00", "createdAt": "2025-10-05T10:00:00"}],
    )
    before = stored(huge_buyer)
    assert cli.main(["run", "--as-of", "2025-10-20T00:00:00Z", "--any-cut-off", "--quarantine"]) == 0
    out = capsys.readouterr()
    assert "value_overflow" in out.out + out.err
    after = stored(huge_buyer)
    assert {u: after[u] for u in (1, 2, BUYER)} == {u: before[u] for u in (1, 2, BUYER)}
    assert after[4][0] == "300.00" and before[4][0] != "300.00"


def test_the_nightly_flow_refuses_and_quarantines_the_same_way(huge_buyer, prefect_server):
    from datetime import datetime, timezone

    from flows.nightly import nightly
    from transforms.problems import InputRejected

    as_of = datetime(2025, 10, 20, tzinfo=timezone.utc)
    before = stored(huge_buyer)
    with pytest.raises(InputRejected, match="value_overflow"):
        nightly(as_of=as_of)
    assert stored(huge_buyer) == before
    summary = nightly(as_of=as_of, quarantine=True)
    assert {p["kind"] for p in summary["quarantined"]} == {"value_overflow"}
    assert stored(huge_buyer) == before  # every user here is on the huge buyer's line
