"""Bad rows in the tree and in the stored pioneer keys are refused naming the rows (exit 3), and
``--quarantine`` leaves exactly those users out, with every stored pioneer keeping its number."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from db import readback
from db.scenario_data import insert_platform_rows
from flows import cli
from tests.db.small_platform import AS_OF, PURCHASES, USERS, nightly
from transforms.problems import InputRejected

CUT_OFF = AS_OF.strftime("%Y-%m-%dT%H:%M:%SZ")


def _user(user_id: int, telegram_id: int, upline: int, **values) -> dict:
    return {"userID": user_id, "telegramID": telegram_id, "upline": upline, "rank": "start", "createdAt": "2025-01-01T00:00:00", **values}


def _users(**status_of) -> list[dict]:
    """The small platform's users, with ``mlmStatus`` replaced for the users named (``u2=...``)."""
    users = [dict(u) for u in USERS]
    for user in users:
        if f"u{user['userID']}" in status_of:
            user["mlmStatus"] = status_of[f"u{user['userID']}"]
    return users


def _without_unique_telegram_id(db) -> None:
    # The platform's models declare telegramID unique, but a platform database may lack it
    # (restored without it); the recompute must refuse what it then holds.
    with db.connect_raw() as c:
        c.execute('ALTER TABLE users DROP CONSTRAINT "users_telegramID_key"')


def _refusal(db, **kwargs) -> InputRejected:
    with pytest.raises(InputRejected) as refused:
        nightly(db, **kwargs)
    return refused.value


def _runs(db) -> list[tuple[str, str]]:
    with db.connect_raw() as c:
        return c.execute("SELECT status, coalesce(error, '') FROM mlm_runs ORDER BY run_id").fetchall()


# --- a telegramID held by several users -------------------------------------------------------


def test_a_shared_telegram_id_is_refused_with_exit_3_naming_every_user_holding_it(db, monkeypatch, capsys):
    _without_unique_telegram_id(db)
    # users 2 and 4 both hold 9001; user 3 (upline 9001) and user 5 below it have no one sponsor
    users = USERS + [_user(4, 9001, 9000), _user(5, 9005, 9002)]
    insert_platform_rows(db, users, PURCHASES)
    before = readback.table_fingerprints(db, ["users", "rank_history", "mlm_period_snapshots"])
    monkeypatch.setenv("MLM_DATABASE_URL", db.uri)
    assert cli.main(["run", "--as-of", CUT_OFF]) == cli.EXIT_BAD_INPUT
    said = capsys.readouterr().err
    assert "shared_telegram_id" in said and "(userID 2, 4)" in said and "telegramID 9001" in said, said
    assert "unreachable below them: userID 3, 5" in said and "Traceback" not in said
    assert readback.table_fingerprints(db, ["users", "rank_history", "mlm_period_snapshots"]) == before
    assert [status for status, _ in _runs(db)] == ["refused"]


def test_a_shared_telegram_id_is_quarantined_with_the_users_below_it(db):
    _without_unique_telegram_id(db)
    insert_platform_rows(db, USERS + [_user(4, 9001, 9000), _user(5, 9005, 9000)], PURCHASES)
    before = readback.stored_users(db)
    outcome = nightly(db, quarantine=True)
    assert outcome.verified and outcome.recomputed.quarantined_user_ids == (2, 3, 4)
    after = readback.stored_users(db)
    assert all(after[u] == before[u] for u in (2, 3, 4))  # left exactly as they were
    assert after[5]["mlmStatus"]["lastActiveMonth"] is None and after[5]["totalVolume"] is not None
    assert after[1]["totalVolume"]["branches"][0]["referralUserId"] == 5  # the root's one branch


def test_a_shared_root_telegram_id_is_refused_even_with_quarantine(db):
    _without_unique_telegram_id(db)
    insert_platform_rows(db, USERS + [_user(4, 9000, 9001)], PURCHASES)
    before = readback.table_fingerprints(db, ["users"])
    refused = _refusal(db, quarantine=True)
    assert [(p.kind, p.ids) for p in refused.problems] == [("shared_telegram_id", (1, 4))]
    assert "telegramID 9000, the root's" in str(refused)
    assert readback.table_fingerprints(db, ["users"]) == before


# --- stored pioneer keys of the wrong shape ----------------------------------------------------

GRANTED = {"hasPioneerBonus": True, "pioneerGrantedAt": "2025-10-03T10:00:00", "pioneerPurchaseId": 2, "pioneerNumber": 1}
WRONG_SHAPES = {
    "a pioneer flag that is text": ({"hasPioneerBonus": "yes"}, "mlmStatus.hasPioneerBonus is a string, not true or false"),
    "a grant time that is a number": ({**GRANTED, "pioneerGrantedAt": 12345}, "mlmStatus.pioneerGrantedAt is a number, not an ISO time"),
    "a grant time on a non-pioneer": ({"hasPioneerBonus": False, "pioneerGrantedAt": 12345}, "pioneerGrantedAt is a number"),
    "a purchase id that is text": ({**GRANTED, "pioneerPurchaseId": "abc"}, "mlmStatus.pioneerPurchaseId is a string, not a purchaseID"),
    "a fractional purchase id": ({**GRANTED, "pioneerPurchaseId": 49.5}, "pioneerPurchaseId is a number that is not a purchaseID"),
    "a purchase id beyond bigint": ({**GRANTED, "pioneerPurchaseId": 1e30}, "pioneerPurchaseId is a number that is not a purchaseID"),
}


@pytest.mark.parametrize("column_type", ["json", "jsonb"])
@pytest.mark.parametrize("status, said", WRONG_SHAPES.values(), ids=WRONG_SHAPES.keys())
def test_a_stored_pioneer_key_of_the_wrong_shape_is_refused_naming_the_user_and_key(db, status, said, column_type):
    # user 2's pioneer keys are JSON null: absent, not wrong
    nulls = {**USERS[1]["mlmStatus"], "hasPioneerBonus": None, "pioneerGrantedAt": None, "pioneerPurchaseId": None}
    insert_platform_rows(db, _users(u2=nulls, u3=status), PURCHASES)
    if column_type == "jsonb":
        with db.connect_raw() as c:
            c.execute('ALTER TABLE users ALTER COLUMN "mlmStatus" TYPE jsonb USING "mlmStatus"::jsonb')
    before = readback.table_fingerprints(db, ["users"])
    refused = _refusal(db)
    assert [(p.kind, p.ids) for p in refused.problems] == [("bad_document", (3,))]
    assert said in refused.problems[0].detail
    assert readback.table_fingerprints(db, ["users"]) == before
    # quarantined: user 3's document is kept as it is, never "healed" into another purchase's grant
    outcome = nightly(db, quarantine=True)
    assert outcome.verified and outcome.recomputed.quarantined_user_ids == (3,)
    stored = readback.stored_users(db)
    assert stored[3]["mlmStatus"] == json.loads(json.dumps(status), parse_float=Decimal)
    assert {k: stored[2]["mlmStatus"][k] for k in nulls} == {**nulls, "lastActiveMonth": "2025-10"}


def test_a_bad_pioneer_key_is_exit_3_naming_the_user(db, monkeypatch, capsys):
    insert_platform_rows(db, _users(u3={**GRANTED, "pioneerPurchaseId": 49.5}), PURCHASES)
    monkeypatch.setenv("MLM_DATABASE_URL", db.uri)
    assert cli.main(["run", "--as-of", CUT_OFF]) == cli.EXIT_BAD_INPUT
    said = capsys.readouterr().err
    assert "bad_document" in said and "(userID 3)" in said and "pioneerPurchaseId" in said and "Traceback" not in said


# --- a quarantined stored pioneer keeps its number and its slot ----------------------------------


def _pioneer(number: int, granted_at: str, purchase_id: int) -> dict:
    return {"hasPioneerBonus": True, "pioneerGrantedAt": granted_at, "pioneerPurchaseId": purchase_id, "pioneerNumber": number}


def _pioneers(db) -> dict[int, int]:
    """Every stored pioneer's number, by userID."""
    return {u: s["mlmStatus"]["pioneerNumber"] for u, s in readback.stored_users(db).items() if (s["mlmStatus"] or {}).get("hasPioneerBonus") is True}


def test_a_quarantined_pioneer_keeps_its_number_and_the_new_one_is_numbered_around_it(db):
    # User 2 was granted number 1 (stored) after user 3's qualifying purchase (10-03): by time,
    # user 3 would be first. User 2's rank is bad, so user 2 is not written: it keeps 1.
    users = _users(u2=_pioneer(1, "2025-10-05T00:00:00", 1))
    users[1]["rank"] = "no-such-rank"
    insert_platform_rows(db, users, PURCHASES)
    outcome = nightly(db, quarantine=True)
    assert outcome.verified and outcome.recomputed.quarantined_user_ids == (2,)
    assert _pioneers(db) == {2: 1, 3: 2}
    assert readback.stored_users(db)[1]["mlmStatus"]["pioneerPurchasesCount"] == 2


def test_an_orphaned_pioneer_keeps_its_number_and_its_slot(db):
    # user 4 sponsors nobody known (an orphan) and holds grant 1; its slot counts at the root
    orphan = _user(4, 9004, 7777, mlmStatus=_pioneer(1, "2025-10-05T00:00:00", 99))
    insert_platform_rows(db, USERS + [orphan], PURCHASES)
    outcome = nightly(db, quarantine=True)
    assert outcome.verified and outcome.recomputed.quarantined_user_ids == (4,)
    assert _pioneers(db) == {3: 2, 4: 1}
    assert readback.stored_users(db)[1]["mlmStatus"]["pioneerPurchasesCount"] == 2


def test_a_quarantined_user_takes_no_new_pioneer_slot(db):
    # user 3 qualifies (5,000.00 on 10-03) but its rank is bad: it is not written, so no grant
    users = _users()
    users[2]["rank"] = "no-such-rank"
    insert_platform_rows(db, users, PURCHASES)
    outcome = nightly(db, quarantine=True)
    assert outcome.verified and outcome.recomputed.quarantined_user_ids == (3,)
    assert _pioneers(db) == {}
    assert readback.stored_users(db)[1]["mlmStatus"]["pioneerPurchasesCount"] == 0


def test_a_quarantined_pioneer_whose_number_cannot_be_kept_is_refused(db):
    # two pioneers after the run, and the held one stores number 5: the other cannot be numbered
    users = _users(u2=_pioneer(5, "2025-10-05T00:00:00", 1))
    users[1]["rank"] = "no-such-rank"
    insert_platform_rows(db, users, PURCHASES)
    before = readback.table_fingerprints(db, ["users"])
    refused = _refusal(db, quarantine=True)
    assert [(p.kind, p.ids) for p in refused.problems] == [("bad_rank", (2,)), ("held_pioneer_number", (2,))]
    assert "2 pioneers; stored numbers userID 2: 5" in str(refused)
    assert readback.table_fingerprints(db, ["users"]) == before


def test_a_purchase_without_a_buyer_is_refused_by_its_purchase_id(db, monkeypatch, capsys):
    """Where the platform's NOT NULL on purchases."userID" is missing, a purchase of nobody is an
    unknown buyer's purchase (it was a TypeError in the extract)."""
    from db.scenario_data import insert_platform_rows
    from flows import cli
    from tests.db.small_platform import PURCHASES, USERS

    insert_platform_rows(db, USERS, PURCHASES)
    with db.connect_raw() as connection:
        connection.execute('ALTER TABLE purchases ALTER COLUMN "userID" DROP NOT NULL')
        connection.execute(
            """INSERT INTO purchases SELECT 77, NULL, "optionID", "projectID", "projectName", "packQty", "packPrice",
                      "ownerTelegramID", "ownerEmail", "createdAt", "updatedAt" FROM purchases WHERE "purchaseID" = 1"""
        )
        before = connection.execute('SELECT "userID", "personalVolumeTotal"::text FROM users ORDER BY 1').fetchall()
    monkeypatch.setenv("MLM_DATABASE_URL", db.uri)
    monkeypatch.setenv("MLM_ROOT_TELEGRAM_ID", "9000")
    assert cli.main(["run", "--as-of", "2025-10-20T00:00:00Z", "--any-cut-off"]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "unknown_user" in err and "(purchaseID 77)" in err and "Traceback" not in err
    with db.connect_raw() as connection:
        assert connection.execute('SELECT "userID", "personalVolumeTotal"::text FROM users ORDER BY 1').fetchall() == before
    # quarantined, the purchase is left out and everyone is written from the others
    assert cli.main(["run", "--as-of", "2025-10-20T00:00:00Z", "--any-cut-off", "--quarantine"]) == 0
    with db.connect_raw() as connection:
        assert connection.execute('SELECT "personalVolumeTotal"::text FROM users WHERE "userID" = 2').fetchone() == ("250.00",)
