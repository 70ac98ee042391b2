"""The command line end to end: ``run``, ``close``, ``backfill``, ``reopen`` and ``audit`` run as
``python -m flows.cli`` subprocesses against a real database, once for each exit code each can
give (README "Exit codes"): the code, the line on stderr (no traceback), the ledger row in
``mlm_runs`` and what is stored, read back.

Python and Prefect take seconds to start, so every case runs at once, each in a database of its
own, when the module's first test asks for the results; the Prefect flows (close, backfill) use
the session's Prefect server. Cases that hold the run lock release it once the waiting command is
seen waiting on it in ``pg_stat_activity``.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import psycopg
import pytest

from db.connection import scratch_database
from db.scenario_data import insert_platform_rows
from db.unit_of_work import LOCK_KEY
from tests.flows.test_flows import PURCHASES, ROOT, USERS
from transforms.recompute import period_of

REPO = Path(__file__).resolve().parents[2]
AS_OF = "2025-10-20T00:00:00Z"
THIS_MONTH = period_of(datetime.now(timezone.utc))
UNREACHABLE = "postgresql://mlm:s3cret-pw@127.0.0.1:1/platform"
# A platform trigger that changes a column the recompute does not own whenever the recompute
# writes user 3: the in-transaction validation must catch it (foreign_keys_kept) and roll back.
TRIGGER = """
CREATE FUNCTION moves_email() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW."email" := 'trigger@example.com'; RETURN NEW; END $$;
CREATE TRIGGER moves_email BEFORE UPDATE OF "mlmVolumes" ON users FOR EACH ROW WHEN (NEW."userID" = 3) EXECUTE FUNCTION moves_email();
"""
ORPHAN = {"userID": 5, "telegramID": 9004, "upline": 77777, "rank": "start"}
SECOND_ROOT = {"userID": 6, "telegramID": 9005, "upline": 9005, "rank": "start"}  # sponsors itself too
ORPHAN_PURCHASE = {"purchaseID": 6, "userID": 5, "packPrice": "100.00", "createdAt": "2025-10-07T10:00:00"}


def _platform(db, *, orphan: bool = False, trigger: bool = False, closed: tuple[str, ...] = (), second_root: bool = False) -> None:
    users = USERS + ([ORPHAN] if orphan else []) + ([SECOND_ROOT] if second_root else [])
    insert_platform_rows(db, users, PURCHASES + ([ORPHAN_PURCHASE] if orphan else []))
    with db.connect_raw() as c:
        if trigger:
            c.execute(TRIGGER)
        for month in closed:  # a closed month, as a close records it
            c.execute("INSERT INTO mlm_periods (period, is_closed) VALUES (%s, true)", [month])


@dataclass
class Case:
    argv: list[str]
    prepare: Callable | None = _platform
    env: dict[str, str] = field(default_factory=dict)
    hold_lock: bool = False  # the run lock is held by another session while the command starts
    release_when_waiting: bool = False  # ... and released once the command waits on it


# Run as subprocesses: every exit code at least once, each command at least once, and both
# Prefect flows (whose engine logs to stderr), at about 5 s of CPU each.
CASES = {
    "run validation failed": Case(["run", "--as-of", AS_OF], lambda db: _platform(db, trigger=True)),
    "run bad input": Case(["run", "--as-of", AS_OF], lambda db: _platform(db, orphan=True)),
    "run locked": Case(["run", "--as-of", AS_OF], hold_lock=True),
    "run --wait": Case(["run", "--wait", "--as-of", AS_OF], hold_lock=True, release_when_waiting=True),
    "run unreachable": Case(["run", "--as-of", AS_OF], None, {"MLM_DATABASE_URL": UNREACHABLE}),
    "close ok, after waiting for the lock": Case(["close", "--month", "2025-09"], hold_lock=True, release_when_waiting=True),
    "close unreachable": Case(["close", "--month", "2025-09"], None, {"MLM_DATABASE_URL": UNREACHABLE}),
    "backfill --dry-run": Case(["backfill", "--from", "2025-08", "--to", "2025-09", "--dry-run"]),
    "backfill refused": Case(["backfill", "--from", "2025-10", "--to", THIS_MONTH]),
    "reopen usage": Case(["reopen", "--month", "2025-13", "--reason", "late refund"]),
    "audit validation failed": Case(["audit", "--as-of", AS_OF], lambda db: _platform(db, trigger=True)),
}
# The rest of each command's outcomes, through the same ``main`` in this process (its exit
# code and stderr as captured), the Prefect flows on the session's server: the same checks.
IN_PROCESS = {
    "run ok": Case(["run", "--as-of", AS_OF]),
    "run --dry-run": Case(["run", "--dry-run", "--as-of", AS_OF]),
    "run --quarantine": Case(["run", "--quarantine", "--as-of", AS_OF], lambda db: _platform(db, orphan=True)),
    "run usage": Case(["run", "--as-of", "2100-01-01T00:00:00Z"]),
    "close usage": Case(["close", "--month", "2025-13"]),
    "close refused": Case(["close", "--month", THIS_MONTH]),
    "backfill ok": Case(["backfill", "--from", "2025-08", "--to", "2025-09"]),
    "backfill usage": Case(["backfill", "--from", "2025-10", "--to", "2025-08"]),
    "backfill unreachable": Case(["backfill", "--from", "2025-08", "--to", "2025-09"], None, {"MLM_DATABASE_URL": UNREACHABLE}),
    "reopen ok": Case(["reopen", "--month", "2025-09", "--reason", "late refund"], lambda db: _platform(db, closed=("2025-08", "2025-09"))),
    "reopen refused": Case(["reopen", "--month", "2025-09", "--reason", "late refund"]),
    "reopen unreachable": Case(["reopen", "--month", "2025-09", "--reason", "late refund"], None, {"MLM_DATABASE_URL": UNREACHABLE}),
    "audit ok": Case(["audit", "--as-of", AS_OF]),
    "audit usage": Case(["audit", "--as-of", AS_OF], lambda db: None),  # a database with no tables
    "audit refused": Case(["audit", "--as-of", AS_OF], lambda db: _platform(db, second_root=True), {"MLM_ROOT_TELEGRAM_ID": ""}),
    "audit unreachable": Case(["audit", "--as-of", AS_OF], None, {"MLM_DATABASE_URL": UNREACHABLE}),
}


@dataclass
class Outcome:
    code: int
    out: str
    err: list[str]  # stderr's lines, the stage progress lines left out
    db: object
    seen_waiting: bool = False


def _progress(line: str) -> bool:
    """A stage progress line, or Prefect's note at exit that its event worker is still sending
    (its own shutdown, on a loaded machine; not the command's output)."""
    return (
        line.startswith("mlm-recompute: stage ")
        or (line.startswith("  ") and line.endswith(" ..."))
        or re.match(r"^\d\d:\d\d:\d\d\.\d+ \| WARNING \| EventsWorker - Still processing items", line) is not None
    )


def _waiting_on_the_run_lock(db, process, timeout=300.0) -> bool:
    deadline = time.monotonic() + timeout
    with db.connect_raw(autocommit=True) as c:
        while time.monotonic() < deadline and process.poll() is None:
            waiting = c.execute(
                """SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                   AND wait_event_type = 'Lock' AND wait_event = 'advisory'"""
            ).fetchone()[0]
            if waiting:
                return True
            time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def outcomes(server_uri, template_name, prefect_server, tmp_path_factory):
    """Every case's outcome, the commands run all at once."""
    from prefect.settings import PREFECT_API_URL

    api_url = PREFECT_API_URL.value()
    with contextlib.ExitStack() as stack:
        launched = {}
        for name, case in CASES.items():
            template = None if name == "audit usage" else template_name
            db = stack.enter_context(scratch_database(server_uri, prefix="mlm_test_cli", template=template))
            if case.prepare:
                case.prepare(db)
            holder = None
            if case.hold_lock:
                holder = stack.enter_context(psycopg.connect(db.uri, autocommit=True))
                holder.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
            env = {k: v for k, v in os.environ.items() if k not in ("MLM_PLAN", "MLM_DEBUG", "MLM_DASK_ADDRESS")}
            env |= {"MLM_DATABASE_URL": db.uri, "MLM_ROOT_TELEGRAM_ID": str(ROOT), "PREFECT_API_URL": api_url, **case.env}
            argv = case.argv + (["--out", str(tmp_path_factory.mktemp("audit"))] if case.argv[0] == "audit" else [])
            process = subprocess.Popen(
                [sys.executable, "-m", "flows.cli", *argv], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            launched[name] = (process, db, holder)
        seen = {}
        for name, (process, db, holder) in launched.items():
            if CASES[name].release_when_waiting:
                seen[name] = _waiting_on_the_run_lock(db, process)
                with db.connect_raw() as c:  # nothing started while it waited
                    seen[name] = seen[name] and c.execute("SELECT count(*) FROM mlm_runs").fetchone()[0] == 0
                holder.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
        results = {}
        for name, (process, db, holder) in launched.items():
            out, err = process.communicate(timeout=600)
            results[name] = Outcome(process.returncode, out, [line for line in err.splitlines() if not _progress(line)], db, seen.get(name, False))
        yield results


@pytest.fixture
def outcome_of(request, server_uri, template_name, prefect_server, monkeypatch, capsys, tmp_path):
    """The outcome of a case by its name: a subprocess's (all of them run at once, the first
    time), or one run now through ``main`` in this process."""
    from flows import cli

    with contextlib.ExitStack() as stack:

        def outcome(name: str) -> Outcome:
            if name in CASES:
                return request.getfixturevalue("outcomes")[name]
            case = IN_PROCESS[name]
            db = stack.enter_context(scratch_database(server_uri, prefix="mlm_test_cli", template=None if name == "audit usage" else template_name))
            if case.prepare:
                case.prepare(db)
            for key, value in {"MLM_DATABASE_URL": db.uri, "MLM_ROOT_TELEGRAM_ID": str(ROOT), **case.env}.items():
                monkeypatch.setenv(key, value)
            for key in ("MLM_PLAN", "MLM_DEBUG", "MLM_DASK_ADDRESS"):
                monkeypatch.delenv(key, raising=False)
            capsys.readouterr()
            code = cli.main(case.argv + (["--out", str(tmp_path)] if case.argv[0] == "audit" else []))
            out, err = capsys.readouterr()
            return Outcome(code, out, [line for line in err.splitlines() if not _progress(line)], db)

        yield outcome


def _said(outcome: Outcome, code: int, *starts: str) -> None:
    """The exit code, and stderr is exactly lines beginning with ``starts`` (one unless more are given)."""
    assert outcome.code == code, (outcome.code, outcome.err, outcome.out[-2000:])
    assert "Traceback" not in "\n".join(outcome.err), outcome.err
    assert len(outcome.err) == len(starts), outcome.err
    for line, start in zip(outcome.err, starts):
        assert line.startswith(start), (line, start)


def _rows(db, statement: str, params=None) -> list[tuple]:
    with db.connect_raw() as c:
        return c.execute(statement, params).fetchall()


def _written_users(db) -> list[int]:
    """Users whose documents a run wrote (the platform rows here have none before)."""
    return [u for (u,) in _rows(db, """SELECT "userID" FROM users WHERE "mlmVolumes" IS NOT NULL AND "totalVolume" IS NOT NULL ORDER BY 1""")]


def _ledger(db) -> list[tuple]:
    return _rows(db, "SELECT mode, status, verified, error FROM mlm_runs ORDER BY run_id")


def _nothing_stored(db) -> None:
    assert _written_users(db) == []
    assert _rows(db, "SELECT count(*) FROM mlm_period_snapshots")[0][0] == 0
    assert _rows(db, "SELECT count(*) FROM rank_history")[0][0] == 0


# --- run ----------------------------------------------------------------------------------------


def test_run_exit_0_writes_verifies_and_records(outcome_of):
    done = outcome_of("run ok")
    _said(done, 0)
    assert "2025-10" in done.out
    assert _ledger(done.db) == [("nightly", "succeeded", True, None)]
    assert _written_users(done.db) == [1, 2, 3, 4]
    [(status, volumes)] = _rows(done.db, """SELECT "mlmStatus"::jsonb, "mlmVolumes"::jsonb FROM users WHERE "userID" = 3""")
    assert volumes["monthlyPV"] == "500.00" and status["lastActiveMonth"] == "2025-10"  # October's 500.00
    assert _rows(done.db, """SELECT "mlmStatus"::jsonb -> 'isFounder' FROM users WHERE "userID" = 2""") == [(True,)]  # kept


def test_run_dry_run_exit_0_records_and_writes_nothing(outcome_of):
    done = outcome_of("run --dry-run")
    _said(done, 0)
    assert "dry run" in done.out
    assert _ledger(done.db) == []
    _nothing_stored(done.db)


def test_run_quarantine_exit_0_leaves_the_bad_row_out_and_writes_the_others(outcome_of):
    done = outcome_of("run --quarantine")
    _said(done, 0)
    assert _written_users(done.db) == [1, 2, 3, 4]  # not the orphan, 5
    [(status, summary)] = _rows(done.db, "SELECT status, summary FROM mlm_runs")
    assert status == "succeeded" and [(p["kind"], p["ids"]) for p in summary["quarantined"]] == [("orphan", [5])]


def test_run_exit_1_validation_failed_rolls_back_and_records_the_failures(outcome_of):
    done = outcome_of("run validation failed")
    _said(done, 1, "mlm-recompute: run 1: validation failed before commit; nothing was written", "  user 3: foreign_keys_kept: ")
    [(mode, status, verified, error)] = _ledger(done.db)
    assert (mode, status, verified) == ("nightly", "failed", None) and "foreign_keys_kept" in error
    assert _rows(done.db, "SELECT user_id, check_name FROM mlm_validation_failures") == [(3, "foreign_keys_kept")]
    _nothing_stored(done.db)
    assert _rows(done.db, """SELECT "email" FROM users WHERE "userID" = 3""") != [("trigger@example.com",)]


def test_run_exit_2_usage_starts_nothing(outcome_of):
    done = outcome_of("run usage")
    _said(done, 2, "mlm-recompute: error: --as-of 2100-01-01T00:00:00+00:00 is later than now")
    assert _ledger(done.db) == []
    _nothing_stored(done.db)


def test_run_exit_3_bad_input_is_refused_in_the_ledger_naming_the_rows(outcome_of):
    done = outcome_of("run bad input")
    _said(done, 3, "mlm-recompute: refused, nothing written: input rejected:", "  - orphan: upline matches no user's telegramID (userID 5)")
    [(mode, status, verified, error)] = _ledger(done.db)
    assert (mode, status) == ("nightly", "refused") and "orphan" in error
    _nothing_stored(done.db)


def test_run_exit_4_locked_records_nothing(outcome_of):
    done = outcome_of("run locked")
    _said(done, 4, "mlm-recompute: another mlm-recompute run holds the run lock on this database")
    assert _ledger(done.db) == []
    _nothing_stored(done.db)


def test_run_wait_waits_for_the_lock_then_runs(outcome_of):
    done = outcome_of("run --wait")
    assert done.seen_waiting  # blocked on the lock, with nothing in the ledger yet
    _said(done, 0)
    assert _ledger(done.db) == [("nightly", "succeeded", True, None)] and _written_users(done.db) == [1, 2, 3, 4]


@pytest.mark.parametrize("command", ["run", "close", "backfill", "reopen", "audit"])
def test_exit_5_the_database_unreachable_is_one_line_naming_the_server(outcome_of, command):
    done = outcome_of(f"{command} unreachable")
    _said(done, 5, "mlm-recompute: database error (127.0.0.1:1, database platform as mlm): ")
    assert "s3cret-pw" not in done.err[0] + done.out


# --- close --------------------------------------------------------------------------------------


def test_close_exit_0_after_waiting_for_the_run_lock(outcome_of):
    done = outcome_of("close ok, after waiting for the lock")
    assert done.seen_waiting  # a close waits for the lock (it never exits 4)
    _said(done, 0)
    assert _ledger(done.db) == [("close", "succeeded", None, None)]
    assert _rows(done.db, "SELECT period, is_closed FROM mlm_periods") == [("2025-09", True)]
    assert _rows(done.db, "SELECT count(*), bool_and(is_final) FROM mlm_period_snapshots WHERE period = '2025-09'") == [(4, True)]
    assert [u for (u,) in _rows(done.db, """SELECT "userID" FROM monthly_stats WHERE month = '2025-09' ORDER BY 1""")] == [2, 3, 4]


def test_close_exit_2_a_malformed_month_starts_nothing(outcome_of):
    done = outcome_of("close usage")
    _said(done, 2, "mlm-recompute: error: not a month: '2025-13'")
    assert _ledger(done.db) == [] and _rows(done.db, "SELECT count(*) FROM mlm_periods") == [(0,)]


def test_close_exit_3_a_month_not_ended_is_refused_in_the_ledger(outcome_of):
    done = outcome_of("close refused")
    _said(done, 3, f"mlm-recompute: refused: {THIS_MONTH} has not ended")
    [(mode, status, _, error)] = _ledger(done.db)
    assert (mode, status) == ("close", "refused") and f"{THIS_MONTH} has not ended" in error
    assert _rows(done.db, "SELECT count(*) FROM mlm_periods") == [(0,)] and _rows(done.db, "SELECT count(*) FROM monthly_stats") == [(0,)]
    _nothing_stored(done.db)


# --- backfill -----------------------------------------------------------------------------------


def _snapshot_rows(db) -> dict[str, int]:
    return dict(_rows(db, "SELECT period, count(*) FROM mlm_period_snapshots GROUP BY 1"))


def test_backfill_exit_0_writes_each_month(outcome_of):
    done = outcome_of("backfill ok")
    _said(done, 0)
    [(mode, status, _, _)] = _ledger(done.db)
    assert (mode, status) == ("backfill", "succeeded") and _snapshot_rows(done.db) == {"2025-08": 4, "2025-09": 4}
    assert _written_users(done.db) == []  # history only: live documents are the nightly run's


def test_backfill_dry_run_exit_0_records_and_writes_nothing(outcome_of):
    done = outcome_of("backfill --dry-run")
    _said(done, 0)
    assert "2025-08" in done.out and "2025-09" in done.out
    assert _ledger(done.db) == [] and _snapshot_rows(done.db) == {}


def test_backfill_exit_2_a_reversed_range_starts_nothing(outcome_of):
    done = outcome_of("backfill usage")
    _said(done, 2, "mlm-recompute: error: --from 2025-10 is after --to 2025-08")
    assert _ledger(done.db) == [] and _snapshot_rows(done.db) == {}


def test_backfill_exit_3_a_month_not_ended_is_refused_in_the_ledger(outcome_of):
    done = outcome_of("backfill refused")
    _said(done, 3, f"mlm-recompute: refused: {THIS_MONTH} has not ended")
    [(mode, status, _, _)] = _ledger(done.db)
    assert (mode, status) == ("backfill", "refused") and _snapshot_rows(done.db) == {}


# --- reopen -------------------------------------------------------------------------------------


def test_reopen_exit_0_reopens_and_records_who_and_why(outcome_of):
    done = outcome_of("reopen ok")
    _said(done, 0)
    assert done.out.strip() == "reopened 2025-09: late refund"
    assert _rows(done.db, "SELECT period, is_closed FROM mlm_periods ORDER BY 1") == [("2025-08", True), ("2025-09", False)]
    [(period, event, actor, reason)] = _rows(done.db, "SELECT period, event, actor, reason FROM mlm_period_events")
    assert (period, event, reason) == ("2025-09", "reopened", "late refund") and actor
    assert _ledger(done.db) == []  # reopening is an event of the month, not a run


def test_reopen_exit_2_a_malformed_month(outcome_of):
    done = outcome_of("reopen usage")
    _said(done, 2, "mlm-recompute: error: not a month: '2025-13'")
    assert _rows(done.db, "SELECT count(*) FROM mlm_period_events") == [(0,)]


def test_reopen_exit_3_when_nothing_is_closed(outcome_of):
    done = outcome_of("reopen refused")
    _said(done, 3, "mlm-recompute: refused: 2025-09 is not closed: no month is closed")
    assert _rows(done.db, "SELECT count(*) FROM mlm_period_events") == [(0,)] and _rows(done.db, "SELECT count(*) FROM mlm_periods") == [(0,)]


# --- audit --------------------------------------------------------------------------------------


def test_audit_exit_0_reports_the_drift_and_writes_nothing(outcome_of):
    done = outcome_of("audit ok")
    _said(done, 0)
    assert done.out.strip()
    assert _ledger(done.db) == []
    _nothing_stored(done.db)


def test_audit_exit_1_when_its_dry_run_fails_validation(outcome_of):
    done = outcome_of("audit validation failed")
    assert done.code == 1, (done.err, done.out[-2000:])
    assert "Traceback" not in "\n".join(done.err) and "drift not computed (validation failed): run 0: validation failed" in done.out
    assert _ledger(done.db) == [] and _rows(done.db, "SELECT count(*) FROM mlm_validation_failures") == [(0,)]
    _nothing_stored(done.db)


def test_audit_exit_2_on_a_database_without_the_platforms_tables(outcome_of):
    done = outcome_of("audit usage")
    _said(done, 2, "mlm-recompute: error: database ")
    assert "no platform table users" in done.err[0]
    assert _rows(done.db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]  # created nothing


def test_audit_exit_3_when_the_drift_cannot_be_computed(outcome_of):
    done = outcome_of("audit refused")
    assert done.code == 3, (done.err, done.out[-2000:])
    assert "Traceback" not in "\n".join(done.err) and "drift not computed (refused): input rejected" in done.out
    assert _ledger(done.db) == []
    _nothing_stored(done.db)
