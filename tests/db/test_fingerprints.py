"""Skipping unchanged users: a run looks again at a user only when what is stored or what it
computed moved since the last run compared them, and a change made by anyone else is never
hidden by the skip."""

from __future__ import annotations

import pytest

from db import extract, load, readback

from tests.db.small_platform import AS_OF, PERIOD, nightly


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


def _owned_status_set_wrong(db, user_id: int):
    # Another connection sets an owned key to a wrong value behind the run's back.
    _execute(db, f"""UPDATE users SET "mlmStatus" = ("mlmStatus"::jsonb || '{{"lastActiveMonth": "1999-01"}}')::json WHERE "userID" = {user_id}""")


def test_after_an_unchanged_run_nobody_is_staged_and_a_row_changed_since_is_staged_and_corrected(platform):
    nightly(platform)
    assert nightly(platform).users_staged == 0  # unchanged: the skip is decided in the frames, nobody is sent
    computed = readback.stored_users(platform)[3]["mlmStatus"]["lastActiveMonth"]
    _owned_status_set_wrong(platform, 3)
    again = nightly(platform)
    assert (again.users_staged, again.users_written) == (1, 1)
    assert readback.stored_users(platform)[3]["mlmStatus"]["lastActiveMonth"] == computed == "2025-10"
    assert nightly(platform).users_staged == 0


def test_the_extract_reads_a_stored_fingerprint_only_for_an_unwritten_row(platform):
    nightly(platform)
    _owned_status_set_wrong(platform, 3)
    inputs, _ = extract.inputs(platform, AS_OF, 100_00)
    stored = dict(inputs.users.select("user_id", "stored_fingerprint").iter_rows())
    assert stored[3] is None and stored[1] is not None and stored[2] is not None


def test_a_platform_write_after_the_extract_is_staged_by_the_next_run(platform, monkeypatch):
    nightly(platform)
    real_inputs = extract.inputs

    def inputs_then_a_platform_write(*args, **kwargs):
        read = real_inputs(*args, **kwargs)
        _owned_status_set_wrong(platform, 3)
        return read

    monkeypatch.setattr(extract, "inputs", inputs_then_a_platform_write)
    # The extract's snapshot saw the row as the last run left it: this run skips it...
    assert nightly(platform).users_staged == 0
    monkeypatch.setattr(extract, "inputs", real_inputs)
    assert readback.stored_users(platform)[3]["mlmStatus"]["lastActiveMonth"] == "1999-01"
    # ...and the next one sees its row version moved, and corrects it.
    again = nightly(platform)
    assert (again.users_staged, again.users_written) == (1, 1)
    assert readback.stored_users(platform)[3]["mlmStatus"]["lastActiveMonth"] == "2025-10"


def _snapshot_run_ids(db) -> dict[int, int]:
    return {user_id: row["run_id"] for user_id, row in readback.snapshot_rows(db, PERIOD).items()}


def _counting_snapshot_copies(monkeypatch) -> dict[str, int]:
    sent: dict[str, int] = {}
    real_copy = load.copy_frame

    def counting(connection, table, frame, *args, **kwargs):
        if table in ("mlm_period_snapshots", "mlm_snapshot_rows"):
            sent[table] = sent.get(table, 0) + frame.height
        return real_copy(connection, table, frame, *args, **kwargs)

    monkeypatch.setattr(load, "copy_frame", counting)
    return sent


def test_a_nightly_run_sends_only_the_changed_snapshot_rows(platform, monkeypatch):
    sent = _counting_snapshot_copies(monkeypatch)
    first = nightly(platform)
    assert sent == {"mlm_period_snapshots": 3} and first.snapshot_rows == 3  # first run: COPYed straight in
    sent.clear()
    before = _snapshot_run_ids(platform)
    unchanged = nightly(platform)
    assert sent == {} and unchanged.snapshot_rows == 0  # nothing changed: nothing sent
    assert _snapshot_run_ids(platform) == before
    # User 2 buys: its row and the root's (full volume) change; user 3's does not.
    _execute(platform, """INSERT INTO purchases ("purchaseID", "userID", "packPrice", "createdAt", "optionID", "projectID", "packQty") VALUES (3, 2, 100.00, '2025-10-05 10:00', 1, 1, 1)""")
    again = nightly(platform)
    after = _snapshot_run_ids(platform)
    moved = {user_id for user_id in after if after[user_id] != before[user_id]}
    assert moved == {1, 2} and all(after[u] == again.run_id for u in moved)
    assert sent == {"mlm_snapshot_rows": 2} and again.snapshot_rows == 2


@pytest.mark.parametrize(
    "where, resent",
    [
        ("user_id = 3", {3}),  # one row stored before fingerprints existed
        ("true", {1, 2, 3}),  # every row of the period: none is read back, all are sent
    ],
)
def test_snapshot_rows_without_a_fingerprint_are_sent_again(platform, monkeypatch, where, resent):
    nightly(platform)
    before = _snapshot_run_ids(platform)
    _execute(platform, f"UPDATE mlm_period_snapshots SET fingerprint = NULL WHERE {where}")
    sent = _counting_snapshot_copies(monkeypatch)
    again = nightly(platform)
    assert sent == {"mlm_snapshot_rows": len(resent)} and again.snapshot_rows == len(resent)
    stored = readback.snapshot_rows(platform, PERIOD)
    assert all(row["fingerprint"] is not None for row in stored.values())
    after = _snapshot_run_ids(platform)
    assert {u for u in after if after[u] != before[u]} == resent and all(after[u] == again.run_id for u in resent)
