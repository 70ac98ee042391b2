"""The write path on real PostgreSQL: merges keep foreign keys, even ones written mid-run;
unchanged users are not rewritten; json and jsonb columns behave the same."""

from __future__ import annotations

import json
import threading
import time


from db import extract, load, readback

from tests.db.small_platform import AS_OF, PERIOD, nightly


def test_owned_keys_are_written_and_foreign_keys_kept(platform):
    outcome = nightly(platform)
    assert outcome.users_written == 3
    user = readback.stored_users(platform)[2]
    assert user["mlmStatus"]["isFounder"] is True and user["mlmStatus"]["lastActiveMonth"] == "2025-10"
    assert user["mlmVolumes"] == {"monthlyPV": "250.00", "personalTotal": 250, "autoship": {"enabled": True}}
    assert user["personalData"] == {"kyc": "verified"}
    assert str(user["fullVolume"]) == "5000.00" and user["teamVolumeTotal"] == user["fullVolume"]


def test_a_second_run_on_unchanged_inputs_writes_nobody(platform):
    nightly(platform)
    before = readback.table_fingerprints(platform, ["users", "rank_history"])
    again = nightly(platform)
    assert again.users_written == 0
    assert again.rank_history_rows == 0
    assert readback.table_fingerprints(platform, ["users", "rank_history"]) == before


def test_only_the_users_whose_values_changed_are_written(platform):
    nightly(platform)
    with platform.connect_raw() as c:
        c.execute("""INSERT INTO purchases ("purchaseID", "userID", "packPrice", "createdAt", "optionID", "projectID", "packQty") VALUES (3, 3, 100.00, '2025-10-05 10:00', 1, 1, 1)""")
    # user 3's own totals change, and so do the full volumes of its sponsor chain (2 and the root)
    assert nightly(platform).users_written == 3
    with platform.connect_raw() as c:
        c.execute("""UPDATE purchases SET "createdAt" = '2025-10-06 10:00' WHERE "purchaseID" = 3""")
    assert nightly(platform).users_written == 0


def test_keys_written_by_another_client_after_the_extract_survive(platform, monkeypatch):
    # The lost-update window: the run has read its inputs; the platform then writes a founder's
    # assigned rank and a grace streak. The merge happens at the database, so both survive.
    real_inputs = extract.inputs

    def inputs_then_a_platform_write(*args, **kwargs):
        read = real_inputs(*args, **kwargs)
        with platform.connect_raw() as other:
            other.execute(
                """UPDATE users SET "mlmStatus" = ("mlmStatus"::jsonb || '{"assignedRank": "growth", "assignedBy": 1}')::json,
                                    "mlmVolumes" = ("mlmVolumes"::jsonb || '{"graceDayStreak": 3}')::json
                   WHERE "userID" = 2"""
            )
        return read

    monkeypatch.setattr(extract, "inputs", inputs_then_a_platform_write)
    assert nightly(platform).verified
    user = readback.stored_users(platform)[2]
    assert user["mlmStatus"]["assignedRank"] == "growth" and user["mlmStatus"]["assignedBy"] == 1
    assert user["mlmVolumes"]["graceDayStreak"] == 3
    assert user["mlmStatus"]["lastActiveMonth"] == "2025-10"  # and the owned keys hold the new values
    assert user["mlmVolumes"]["monthlyPV"] == "250.00"


def test_a_writer_holding_the_row_during_the_write_is_merged_not_overwritten(platform):
    # A second connection has the row locked with an uncommitted change when the run writes;
    # the run waits for it, then merges into the committed version of the row.
    other = platform.connect_raw()
    other.execute("""UPDATE users SET "mlmStatus" = ("mlmStatus"::jsonb || '{"graceDays": 2}')::json WHERE "userID" = 2""")
    errors = []
    run = threading.Thread(target=lambda: _capture(errors, nightly, platform))
    run.start()
    _wait_until_blocked(platform)
    other.commit()
    other.close()
    run.join(timeout=60)
    assert not errors and not run.is_alive()
    status = readback.stored_users(platform)[2]["mlmStatus"]
    assert status["graceDays"] == 2 and status["isFounder"] is True and status["lastActiveMonth"] == "2025-10"


def _capture(errors, fn, *args):
    try:
        fn(*args)
    except Exception as error:  # reported by the test
        errors.append(error)


def _wait_until_blocked(db, timeout=20.0):
    deadline = time.monotonic() + timeout
    with db.connect_raw(autocommit=True) as c:
        while time.monotonic() < deadline:
            waiting = c.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()[0]
            if waiting:
                return
            time.sleep(0.05)
    raise AssertionError("the run's UPDATE never waited on the locked row")


def test_jsonb_columns_work_the_same(platform):
    with platform.connect_raw() as c:
        for column in ("mlmStatus", "mlmVolumes", "totalVolume"):
            c.execute(f'ALTER TABLE users ALTER COLUMN "{column}" TYPE jsonb USING "{column}"::jsonb')
    assert nightly(platform).users_written == 3
    user = readback.stored_users(platform)[2]
    assert user["mlmStatus"]["isFounder"] is True and user["mlmStatus"]["lastActiveMonth"] == "2025-10"
    assert nightly(platform).users_written == 0


def test_rank_history_and_snapshots_are_written(platform):
    with platform.connect_raw() as c:
        # make user 2 a builder: PV 1,000, two legs of 25,000 each, both active
        c.execute("""UPDATE purchases SET "packPrice" = 1000 WHERE "purchaseID" = 1""")
        c.execute("""UPDATE purchases SET "packPrice" = 25000 WHERE "purchaseID" = 2""")
        c.execute("""INSERT INTO users ("userID", "telegramID", "upline", "rank", "fullVolume", "personalVolumeTotal") VALUES (4, 9003, 9001, 'start', 0, 0)""")
        c.execute("""INSERT INTO purchases ("purchaseID", "userID", "packPrice", "createdAt", "optionID", "projectID", "packQty") VALUES (3, 4, 25000.00, '2025-10-05 10:00', 1, 1, 1)""")
    outcome = nightly(platform)
    with platform.connect_raw() as c:
        history = c.execute(
            'SELECT "userID", "previousRank", "newRank", "teamVolume"::text, "activePartners", "qualificationMethod" FROM rank_history'
        ).fetchall()
    assert history == [(2, "start", "builder", "50000.00", 2, "natural")]
    snapshots = readback.snapshot_rows(platform, PERIOD)
    assert set(snapshots) == {1, 2, 3, 4}
    assert snapshots[2]["rank"] == "builder" and snapshots[2]["active_partners"] == 2
    assert snapshots[2]["run_id"] == outcome.run_id and not snapshots[2]["is_final"]
    assert nightly(platform).rank_history_rows == 0  # written once
    stored = json.loads(json.dumps(readback.stored_users(platform)[2]["mlmStatus"], default=str))
    assert stored["rankQualifiedAt"] == AS_OF.isoformat()


def test_a_default_document_is_a_jsonb_literal_postgresql_reads_back_whole(platform):
    # The platform's default documents hold no quote today; a default that does (a founder's
    # note, say) must still be one literal, its quote doubled, not the end of the string.
    from db.load import _jsonb_literal

    document = {"note": "O'Brien's 'team'", "nested": {"quote": "'"}, "n": 1}
    with platform.connect_raw() as c:
        (stored,) = c.execute(f"SELECT {_jsonb_literal(document)}").fetchone()
    assert stored == document


def test_a_staging_table_name_outside_the_projects_own_is_refused_by_name():
    import pytest

    from db.load import quoted

    assert quoted("mlm_staging_7") == '"mlm_staging_7"'
    with pytest.raises(ValueError, match=r"^not a staging table name: 'users; DROP TABLE users'$"):
        quoted("users; DROP TABLE users")


def test_the_untouched_digest_hashes_each_column_the_recompute_does_not_own(platform):
    # Columns with a hash function go in binary (half the cost of hashing text, measured at 1M
    # users); varchar and json, which have none, as their text; the owned columns not at all.
    from db.load import OWNED_COLUMNS, untouched_digest

    with platform.connect_raw() as c:
        digest = untouched_digest(c)
    assert digest.startswith('hash_record_extended(ROW(u."userID", u."telegramID", u."upline", u."createdAt", u."email"::text,')
    assert 'u."lastActive", u."balanceActive", u."balancePassive", u."personalData"::text,' in digest
    assert digest.endswith('u."notes", u."stateFSM"::text), 0)')
    assert not any(f'"{column}"' in digest for column in OWNED_COLUMNS)


def test_staging_tables_a_dead_run_left_are_dropped_and_no_other_table(platform):
    with platform.connect_raw() as connection:
        connection.execute("CREATE TABLE mlm_staging_41 (user_id bigint)")
        connection.execute("CREATE TABLE mlm_staging_41_written (user_id bigint)")  # dropped with its staging table
        connection.execute("CREATE TABLE mlm_staging_41_extra (user_id bigint)")  # not a staging table's name
        connection.execute("CREATE TABLE mlm_staging_ (user_id bigint)")
        assert sorted(load.drop_abandoned_staging(connection)) == ["mlm_staging_41"]
        left = connection.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'mlm\\_staging%' ORDER BY 1").fetchall()
    assert left == [("mlm_staging_",), ("mlm_staging_41_extra",)]


def test_a_first_name_with_control_characters_is_written_as_valid_json(platform):
    # a branch carries its referral's first name, the platform's data: quotes, backslashes, a
    # newline and a tab in it must reach PostgreSQL escaped (the COPY into jsonb refused them raw)
    name = 'Ann "the\\boss"\nLee\t'
    with platform.connect_raw() as c:
        c.execute("""UPDATE users SET "firstname" = %s WHERE "userID" = 3""", [name])
    result = nightly(platform)
    assert result.users_written == 3
    branches = readback.stored_users(platform)[2]["totalVolume"]["branches"]
    assert [b["referralName"] for b in branches] == [name]
