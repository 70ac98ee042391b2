"""Faults for real, on PostgreSQL: a killed run (before and after its commit), a failed validation,
two runs at once, a dry run, the server gone mid-run, and the platform's lost update reproduced
next to this project's write path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.orm.attributes import flag_modified

from db import extract, load, readback, validate
from db.scenario_data import ensure_scenario_option
from db.schema import OWN_TABLES, PLATFORM_TABLES
from db.unit_of_work import RunLocked
from flows.pipeline import ValidationFailed

from tests.db.small_platform import nightly
from tests.tcp_proxy import TcpProxy

ALL_TABLES = [t.name for t in PLATFORM_TABLES + OWN_TABLES]
DATA_TABLES = [t for t in ALL_TABLES if t != "mlm_runs"]


@pytest.mark.parametrize(
    "sabotage, check",
    [
        # overwriting the whole document (the bug the merge exists to prevent) drops a founder flag
        ("""UPDATE users AS u SET "mlmStatus" = s.mlm_status::json FROM "{table}" AS s WHERE u."userID" = s.user_id""", "foreign_keys_kept"),
        # touching a column the recompute does not own
        ("""UPDATE users SET "email" = 'x@example.com' WHERE "userID" = 2""", "foreign_keys_kept"),
        # a stored value that is not the computed one
        ("""UPDATE users SET "personalVolumeTotal" = 1 WHERE "userID" = 2""", "stored_equals_computed"),
        # an owned key the recompute did not stage, added behind the merge's back (stored must
        # equal prior merged with staged, not merely contain the staged keys)
        ("""UPDATE users SET "mlmStatus" = ("mlmStatus"::jsonb || '{"pioneerNumber": 99}')::json WHERE "userID" = 2""", "stored_equals_computed"),
        # a document that is no longer an object
        ("""UPDATE users SET "totalVolume" = '[]' WHERE "userID" = 2""", "has_documents"),
        # a second pioneer number 1
        ("""UPDATE users SET "mlmStatus" = '{"hasPioneerBonus": true, "pioneerNumber": 1}' WHERE "userID" = 2""", "pioneer_numbering"),
    ],
)
def test_a_run_that_fails_validation_leaves_everything_as_it_was(platform, monkeypatch, sabotage, check):
    real_merge = load.merge_documents

    def sabotaged_merge(connection, table):
        written = real_merge(connection, table)
        connection.execute(sabotage.replace("{table}", table))
        return written

    monkeypatch.setattr(load, "merge_documents", sabotaged_merge)
    before = readback.table_fingerprints(platform, DATA_TABLES)
    with pytest.raises(ValidationFailed, match=r"nothing was written.*userIDs .*2") as failed:
        nightly(platform)
    watched = ["users", "rank_history", "mlm_period_snapshots"]
    assert readback.table_fingerprints(platform, watched) == {t: before[t] for t in watched}
    with platform.connect_raw() as c:
        status = c.execute("SELECT status FROM mlm_runs WHERE run_id = %s", [failed.value.run_id]).fetchone()[0]
        stored = c.execute("SELECT user_id, check_name FROM mlm_validation_failures WHERE run_id = %s", [failed.value.run_id]).fetchall()
    assert status == "failed"
    assert (2, check) in stored
    monkeypatch.undo()
    assert nightly(platform).verified  # and the next run, with the real merge, succeeds


def test_a_write_that_never_lands_is_caught(platform, monkeypatch):
    # The platform's bug in miniature: the values are computed, the write silently does nothing.
    monkeypatch.setattr(load, "merge_documents", lambda connection, table: 0)
    with pytest.raises(ValidationFailed) as failed:
        nightly(platform)
    checks = {(f["user_id"], f["check_name"]) for f in failed.value.failures}
    assert {(1, "stored_equals_computed"), (2, "stored_equals_computed"), (3, "stored_equals_computed")} <= checks


def test_a_dry_run_reports_and_writes_nothing(platform):
    before = readback.table_fingerprints(platform, ALL_TABLES)
    outcome = nightly(platform, dry_run=True)
    assert readback.table_fingerprints(platform, ALL_TABLES) == before
    assert outcome.status == "dry run" and outcome.users_written == 3
    assert outcome.changes["users"] == 3
    assert outcome.changes["by_key"]["mlmVolumes.monthlyPV"] == 3
    assert outcome.summary()["new_pioneers"] == [3]


def test_two_runs_at_once_never_interleave(platform, monkeypatch):
    # The first run holds the lock while it reads; a second run that may not wait is refused,
    # one that may wait runs after it.
    reading, release = threading.Event(), threading.Event()
    real_inputs = extract.inputs

    def slow_inputs(*args, **kwargs):
        reading.set()
        release.wait(30)
        return real_inputs(*args, **kwargs)

    monkeypatch.setattr(extract, "inputs", slow_inputs)
    outcomes, errors = [], []

    def run(**kwargs):
        try:
            outcomes.append(nightly(platform, **kwargs))
        except BaseException as error:  # seen by the assertions below, not lost in the thread
            errors.append(error)

    first = threading.Thread(target=run)
    first.start()
    assert reading.wait(30)
    monkeypatch.setattr(extract, "inputs", real_inputs)
    with pytest.raises(RunLocked, match="another mlm-recompute run holds the run lock"):
        nightly(platform, wait=False)
    waiter = threading.Thread(target=run, kwargs={"wait": True})
    waiter.start()
    # The waiter's connection is blocked on the run lock (the advisory lock), not running alongside.
    _wait_for_advisory_lock_waiter(platform)
    assert outcomes == [] and errors == []  # neither has ended: the first is held in its extract
    with platform.connect_raw() as c:
        assert c.execute("SELECT status FROM mlm_runs").fetchall() == [("running",)]  # the waiter has not started its run
    release.set()
    first.join(60)
    waiter.join(60)
    assert errors == [] and [o.users_written for o in outcomes] == [3, 0]
    assert outcomes[0].run_id < outcomes[1].run_id


def _wait_for_advisory_lock_waiter(db, timeout=30.0) -> None:
    """Until a connection of ``db`` waits on an advisory lock (``pg_advisory_lock``)."""
    deadline = time.monotonic() + timeout
    with db.connect_raw(autocommit=True) as c:
        while time.monotonic() < deadline:
            waiting = c.execute(
                """SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                   AND wait_event_type = 'Lock' AND wait_event = 'advisory' AND query LIKE '%%pg_advisory_lock(%%'"""
            ).fetchone()[0]
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError("no run waited on the run lock")


def _bulk_platform(db, users: int) -> None:
    """A large enough platform that the write takes seconds: a ternary tree, one purchase each."""
    with db.connect_raw() as c:
        c.execute(
            """INSERT INTO users ("userID", "telegramID", "upline", "rank", "fullVolume", "personalVolumeTotal", "mlmStatus")
               SELECT g, 100000000 + g, 100000000 + greatest(1, g / 3), 'start', 0, 0,
                      CASE WHEN g %% 10 = 0 THEN '{"isFounder": false, "graceDayStreak": 1}'::json END
               FROM generate_series(1, %s) AS g""",
            [users],
        )
        ensure_scenario_option(c.cursor())
        c.execute(
            """INSERT INTO purchases ("purchaseID", "userID", "optionID", "projectID", "packQty", "packPrice", "createdAt")
               SELECT g, g, 1, 1, 1, (ARRAY[50, 100, 200, 500, 1000])[1 + g %% 5], '2025-10-01'::timestamp + (g %% 1000) * interval '1 minute'
               FROM generate_series(1, %s) AS g""",
            [users],
        )


def _run_command(db, *args) -> subprocess.Popen:
    env = {**os.environ, "MLM_DATABASE_URL": db.uri, "MLM_ROOT_TELEGRAM_ID": "100000001"}
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_a_run_killed_mid_write_changes_nothing_and_the_next_run_succeeds(db):
    _bulk_platform(db, 20_000)
    before = readback.table_fingerprints(db, DATA_TABLES)
    with db.connect_raw() as blocker:
        # SHARE conflicts only with the ROW EXCLUSIVE lock an UPDATE of users takes: the run
        # reads, stages and locks its rows, and its first statement to wait is the merging UPDATE.
        blocker.execute("LOCK TABLE users IN SHARE MODE")
        run = _run_command(db, "run", "--as-of", "2025-10-20T00:00:00Z")
        waiting = _wait_for_query(db, ("WITH merged AS (",), run, waiting=True)
        run.send_signal(signal.SIGKILL)  # the run dies in its merging UPDATE, its rows staged and locked
        run.wait(30)
        blocker.rollback()
    _wait_for_backends_to_end(db)
    assert "UPDATE users AS u SET" in waiting and '"mlm_staging_1_before" AS b' in waiting
    assert readback.table_fingerprints(db, DATA_TABLES) == before
    with db.connect_raw() as c:
        assert c.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'mlm_staging_%'").fetchone()[0] == 0
        assert c.execute("SELECT status FROM mlm_runs").fetchall() == [("running",)]  # the trace of the killed run
    again = _run_command(db, "run", "--as-of", "2025-10-20T00:00:00Z")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    with db.connect_raw() as c:
        assert c.execute("SELECT status FROM mlm_runs ORDER BY run_id").fetchall() == [("abandoned",), ("succeeded",)]
        assert c.execute("""SELECT count(*) FROM users WHERE "mlmVolumes" IS NULL""").fetchone()[0] == 0


@pytest.mark.parametrize("changed_since", [False, True], ids=["untouched since", "a written row changed since"])
def test_a_run_killed_after_its_commit_is_recorded_committed_and_verified_by_the_next_run(db, changed_since):
    _bulk_platform(db, 20_000)
    run = _run_command(db, "run", "--as-of", "2025-10-20T00:00:00Z")
    _wait_for_query(db, ('COPY "mlm_staging',), run)  # in the write transaction, which has read users
    with db.connect_raw() as blocker:
        # Queued behind the write's locks and granted at its COMMIT: the verification after
        # commit then waits for this lock, and the run is killed there.
        locking = threading.Thread(target=blocker.execute, args=["LOCK TABLE users IN ACCESS EXCLUSIVE MODE"])
        locking.start()
        verifying = _wait_for_query(db, ("WITH moved",), run, waiting=True)
        run.send_signal(signal.SIGKILL)
        run.wait(30)
        locking.join(30)
        blocker.rollback()
    _wait_for_backends_to_end(db)
    assert "_written" in verifying
    with db.connect_raw() as c:
        assert c.execute("SELECT status FROM mlm_runs").fetchall() == [("running",)]
        assert c.execute("""SELECT count(*) FROM users WHERE "mlmVolumes" IS NULL""").fetchone()[0] == 0  # committed
        if changed_since:  # the platform writes a user's owned value before the next run
            c.execute("""UPDATE users SET "personalVolumeTotal" = "personalVolumeTotal" + 1 WHERE "userID" = 5""")
    again = _run_command(db, "run", "--as-of", "2025-10-20T00:00:00Z")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    with db.connect_raw() as c:
        runs = c.execute("SELECT status, verified, users_changed, error FROM mlm_runs ORDER BY run_id").fetchall()
        failures = c.execute("SELECT run_id, user_id, check_name FROM mlm_validation_failures").fetchall()
        assert c.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'mlm_staging_%'").fetchone()[0] == 0
        repaired = c.execute("""SELECT "personalVolumeTotal"::text FROM users WHERE "userID" = 5""").fetchone()[0]
    (status, verified, users_changed, error), (next_status, next_verified, _, _) = runs
    assert (status, users_changed, next_status, next_verified) == ("committed", 20_000, "succeeded", True)
    assert error.startswith("the run's process ended after its write committed")
    if changed_since:
        assert verified is False and failures == [(1, 5, "stored_equals_computed")] and "checked by the next run: 1 failure" in error
        assert repaired == "50.00"  # and the next run wrote it back
    else:
        assert verified is True and failures == [] and "verified by the next run: stored equals computed for the 20000 users" in error


def test_a_verification_that_cannot_run_leaves_the_run_committed_for_the_next_run_to_verify(platform, monkeypatch):
    def connection_lost(db, table):
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(validate, "failures_after_commit", connection_lost)
    with pytest.raises(psycopg.OperationalError):
        nightly(platform)
    with platform.connect_raw() as c:
        assert c.execute("SELECT status, verified, error FROM mlm_runs").fetchall() == [
            ("committed", None, "OperationalError: server closed the connection unexpectedly (after its write committed; not verified)")
        ]
    monkeypatch.undo()
    assert nightly(platform).users_written == 0  # the write had committed
    with platform.connect_raw() as c:
        (status, verified, error), second = c.execute("SELECT status, verified, error FROM mlm_runs ORDER BY run_id").fetchall()
    assert (status, verified, second[:2]) == ("committed", True, ("succeeded", True))
    assert error.endswith("not verified); verified by the next run: stored equals computed for the 3 users it wrote")


def test_a_server_gone_mid_run_reports_the_runs_own_error_not_the_ledgers(platform, monkeypatch, capsys):
    # The server goes away as the extract sends its first read of purchases (the proxy drops
    # every connection and refuses new ones), so recording the failure in the ledger fails too.
    from flows import cli

    with TcpProxy(platform.uri, cut_on=b"bit_xor(", go_down=True) as proxy:
        monkeypatch.setenv("MLM_DATABASE_URL", proxy.uri)
        monkeypatch.setenv("MLM_ROOT_TELEGRAM_ID", "9000")
        code = cli.main(["run", "--as-of", "2025-10-20T00:00:00Z"])
        assert proxy.cut_count == 1
    said = [line for line in capsys.readouterr().err.splitlines() if "stage extract finished" not in line]  # progress
    assert code == 5 and len(said) == 1 and said[0].startswith("mlm-recompute: database error"), said
    failed, _, ledger_note = said[0].partition(" (the runs ledger could not be updated either: ")
    assert "server closed the connection unexpectedly" in failed  # the extract's own error
    assert "connection to server at" not in failed and "connection to server at" in ledger_note  # the ledger's, only noted
    with platform.connect_raw() as c:
        assert c.execute("SELECT status, error FROM mlm_runs").fetchall() == [("running", None)]  # what the ledger could not record


def _wait_for_query(db, prefixes, process, timeout=240.0, waiting=False) -> str:
    deadline = time.monotonic() + timeout
    with db.connect_raw(autocommit=True) as c:
        while time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            rows = c.execute(
                "SELECT query FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()"
                + (" AND wait_event_type = 'Lock'" if waiting else "")
            ).fetchall()
            for (query,) in rows:
                if query.lstrip().startswith(prefixes):
                    return query
            time.sleep(0.02)
    raise AssertionError("the run never reached its write")


def _wait_for_backends_to_end(db, timeout=60.0) -> None:
    deadline = time.monotonic() + timeout
    with db.connect_raw(autocommit=True) as c:
        while time.monotonic() < deadline:
            others = c.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            ).fetchone()[0]
            if not others:
                return
            time.sleep(0.1)
    raise AssertionError("the killed run's connection never ended")


# --- the platform's bug, reproduced -------------------------------------------------------------


class _Base(DeclarativeBase):
    pass


class PlatformUser(_Base):
    """The platform's ORM mapping of users, as its online code has it (JSON, not MutableDict)."""

    __tablename__ = "users"
    userID: Mapped[int] = mapped_column(primary_key=True)
    telegramID: Mapped[int]
    mlmStatus: Mapped[dict | None] = mapped_column(sa.JSON)


def test_the_platforms_in_place_mutation_is_lost_and_this_write_path_is_not(platform):
    with Session(platform.engine) as session:
        user = session.get(PlatformUser, 3)
        user.mlmStatus = user.mlmStatus or {}
        session.commit()
        user.mlmStatus["hasPioneerBonus"] = True  # noqa: JSN001 (the bug, on purpose: SQLAlchemy sees no change)
        session.commit()
    assert readback.stored_users(platform)[3]["mlmStatus"] == {}  # the grant was lost

    with Session(platform.engine) as session:
        user = session.get(PlatformUser, 3)
        user.mlmStatus["hasPioneerBonus"] = True
        flag_modified(user, "mlmStatus")  # the call the bad merge removed
        session.commit()
    assert readback.stored_users(platform)[3]["mlmStatus"] == {"hasPioneerBonus": True}

    with platform.connect_raw() as c:
        c.execute("""UPDATE users SET "mlmStatus" = '{}' WHERE "userID" = 3""")
    outcome = nightly(platform)  # user 3's 5,000 purchase makes it a pioneer, through this path
    assert outcome.verified
    status = readback.stored_users(platform)[3]["mlmStatus"]
    assert status["hasPioneerBonus"] is True and status["pioneerNumber"] == 1 and status["pioneerPurchaseId"] == 2


def _one_cent_more_for_user_2(monkeypatch):
    real_merge = load.merge_documents

    def merge_then_one_cent_more(connection, table):
        written = real_merge(connection, table)
        connection.execute("""UPDATE users SET "personalVolumeTotal" = "personalVolumeTotal" + 0.01 WHERE "userID" = 2""")
        return written

    monkeypatch.setattr(load, "merge_documents", merge_then_one_cent_more)


def test_a_personal_total_that_does_not_conserve_volume_is_named(platform, monkeypatch):
    _one_cent_more_for_user_2(monkeypatch)
    with pytest.raises(ValidationFailed) as failed:
        nightly(platform)
    assert (2, "volume_conserved") in {(f["user_id"], f["check_name"]) for f in failed.value.failures}


def test_a_nightly_run_proves_volume_conservation_by_the_extracts_total(platform, monkeypatch):
    # Every stored personal total adds up to the total the extract summed in its snapshot, so
    # the purchases are not read again: the statement that would read them is broken here, on a
    # first run and on a nightly run that writes one user, and both still succeed.
    monkeypatch.setattr(validate, "_BOUGHT_BY_WRITTEN", "SELECT 1 / 0 AS user_id, 0 AS cents")
    outcome = nightly(platform)
    assert outcome.verified and outcome.users_written == outcome.recomputed.state.height
    with platform.connect_raw() as c:
        c.execute("""INSERT INTO purchases ("purchaseID", "userID", "optionID", "projectID", "packQty", "packPrice", "createdAt")
                     VALUES (30, 3, 1, 1, 1, 10.00, '2025-10-05 10:00')""")
    again = nightly(platform)
    assert again.verified and again.users_written == 3


def test_a_difference_in_the_total_falls_back_to_naming_users_from_their_purchases(platform, monkeypatch):
    # The shortcut only ever lets a run through when the totals agree; when they do not, the
    # set-based per-user comparison runs (and here, broken, fails the run loudly).
    _one_cent_more_for_user_2(monkeypatch)
    monkeypatch.setattr(validate, "_BOUGHT_BY_WRITTEN", "SELECT 1 / 0 AS user_id, 0 AS cents")
    with pytest.raises(Exception, match="division by zero"):
        nightly(platform)
