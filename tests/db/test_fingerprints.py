"""Skipping unchanged users: a run looks again at a user only when what is stored or what it
computed moved since the last run compared them, and a change made by anyone else is never
hidden by the skip."""

from __future__ import annotations

from db import readback

from tests.db.small_platform import nightly


def _execute(db, statement):
    with db.connect_raw() as connection:
        connection.execute(statement)


def _fingerprint_rows(db) -> int:
    with db.connect_raw() as connection:
        return connection.execute("SELECT count(*) FROM mlm_user_fingerprints").fetchone()[0]


def test_a_second_run_on_unchanged_inputs_compares_nobody(platform):
    assert nightly(platform).users_staged == 3
    again = nightly(platform)
    assert (again.users_staged, again.users_written) == (0, 0)
    assert again.summary()["users_compared"] == 0


def test_an_owned_value_changed_by_another_writer_is_compared_and_repaired(platform):
    nightly(platform)
    computed = readback.stored_users(platform)[2]
    # The platform's online code writes an owned key and an owned column behind the run's back.
    _execute(platform, """UPDATE users SET "mlmVolumes" = ("mlmVolumes"::jsonb || '{"personalTotal": 1}')::json, "isActive" = NOT "isActive" WHERE "userID" = 2""")
    again = nightly(platform)
    assert (again.users_staged, again.users_written) == (1, 1)
    repaired = readback.stored_users(platform)[2]
    assert repaired["mlmVolumes"] == computed["mlmVolumes"] and repaired["isActive"] == computed["isActive"]


def test_a_foreign_key_written_by_another_client_is_compared_not_rewritten(platform):
    nightly(platform)
    _execute(platform, """UPDATE users SET "mlmStatus" = ("mlmStatus"::jsonb || '{"assignedRank": "growth"}')::json WHERE "userID" = 2""")
    again = nightly(platform)
    assert (again.users_staged, again.users_written) == (1, 0)
    assert readback.stored_users(platform)[2]["mlmStatus"]["assignedRank"] == "growth"
    # The comparison was remembered: the next run skips the user again.
    assert nightly(platform).users_staged == 0


def test_a_purchase_stages_the_buyer_and_its_upline_only(platform):
    nightly(platform)
    _execute(platform, """INSERT INTO purchases ("purchaseID", "userID", "packPrice", "createdAt", "optionID", "projectID", "packQty") VALUES (3, 3, 100.00, '2025-10-05 10:00', 1, 1, 1)""")
    again = nightly(platform)
    # user 3 bought; 2 and the root see their full volume move
    assert (again.users_staged, again.users_written) == (3, 3)


def test_fingerprints_of_another_hash_version_are_not_trusted(platform):
    nightly(platform)
    _execute(platform, "UPDATE mlm_user_fingerprints SET hash_version = 'polars-0.0.0/1'")
    again = nightly(platform)
    assert (again.users_staged, again.users_written) == (3, 0)


def test_a_dry_run_records_no_fingerprints(platform):
    nightly(platform, dry_run=True)
    assert _fingerprint_rows(platform) == 0
    assert nightly(platform).users_staged == 3


def _freeze(db):
    with db.connect_raw(autocommit=True) as connection:
        connection.execute("VACUUM (FREEZE) users")


def test_freezing_keeps_row_versions_and_hides_no_change(platform):
    nightly(platform)
    _freeze(platform)
    assert nightly(platform).users_staged == 0  # the frozen rows kept their xmin
    _execute(platform, """UPDATE users SET "isActive" = NOT "isActive" WHERE "userID" = 2""")
    _freeze(platform)
    again = nightly(platform)
    assert (again.users_staged, again.users_written) == (1, 1)
