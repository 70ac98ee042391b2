"""Every check the run makes before commit and after it, seen to fire.

Each case corrupts exactly the property one check guards, through the real write path: the
staged documents changed after their COPY (a compute stage that got it wrong), the written rows
changed after the merging UPDATE (a merge that got it wrong), or a second connection committing
behind the run's back (another writer). The run goes through the command line in process, so the
exit code and the lines on stderr are the CLI's own; then the ledger row, the stored failures
and every user's stored documents are read back: nothing the run wrote may remain.

README "Checks the run makes" lists these cases next to the checks.
"""

from __future__ import annotations

import pytest

from db import load, readback
from db.schema import OWN_TABLES, PLATFORM_TABLES
from flows import cli
from flows.config import DEFAULT_PLAN, load_plan
from flows.pipeline import ValidationFailed
from tests.db.small_platform import AS_OF, PURCHASES, ROOT, USERS
from db.scenario_data import insert_platform_rows

RUN = ["run", "--as-of", AS_OF.isoformat()]
# Tables a failed run must leave as they were (the ledger's own two tables are checked apart).
UNTOUCHED = [t.name for t in PLATFORM_TABLES + OWN_TABLES if t.name not in ("mlm_runs", "mlm_validation_failures")]
GRANT = '"hasPioneerBonus": true, "pioneerPurchaseId": 1, "pioneerGrantedAt": "2025-10-02T10:00:00+00:00"'

# name -> (SQL run on the stored platform first, SQL on the staging table after its COPY,
#          SQL on users after the merging UPDATE, the (userID, check) pairs expected)
CASES = {
    "stored_equals_computed": (None, None, """UPDATE users SET "isActive" = NOT "isActive" WHERE "userID" = 2""", {(2, "stored_equals_computed")}),
    "foreign_keys_kept: a staged key the recompute does not own": (
        None,
        """UPDATE {table} SET mlm_status = mlm_status || '{{"isFounder": false}}' WHERE user_id = 2""",
        None,
        {(2, "foreign_keys_kept")},
    ),
    "foreign_keys_kept: a column the recompute does not own": (
        None,
        None,
        """UPDATE users SET "email" = 'moved@example.com' WHERE "userID" = 3""",
        {(3, "foreign_keys_kept")},
    ),
    "rank_never_down": (
        """UPDATE users SET "rank" = 'builder' WHERE "userID" = 2""",
        """UPDATE {table} SET rank = 'start' WHERE user_id = 2""",
        None,
        {(2, "rank_never_down")},
    ),
    "has_documents": (None, """UPDATE {table} SET total_volume = '[]' WHERE user_id = 2""", None, {(2, "has_documents")}),
    "volume_conserved": (
        None,
        """UPDATE {table} SET personal_volume_total = personal_volume_total + 0.01 WHERE user_id = 2""",
        None,
        {(2, "volume_conserved")},
    ),
    "pioneer_numbering": (
        None,
        """UPDATE {table} SET mlm_status = mlm_status || '{{"pioneerNumber": 2}}' WHERE user_id = 3""",
        None,
        {(3, "pioneer_numbering")},
    ),
    "pioneer_numbering: a number that is not a number": (
        None,
        """UPDATE {table} SET mlm_status = mlm_status || '{{"pioneerNumber": "first"}}' WHERE user_id = 3""",
        None,
        {(3, "pioneer_numbering")},
    ),
    "pioneer_counter": (
        None,
        """UPDATE {table} SET mlm_status = mlm_status || '{{"pioneerPurchasesCount": 5}}' WHERE user_id = 1""",
        None,
        {(1, "pioneer_counter")},
    ),
}


@pytest.fixture
def platform(db, monkeypatch):
    insert_platform_rows(db, USERS, PURCHASES)
    monkeypatch.setenv("MLM_DATABASE_URL", db.uri)
    monkeypatch.setenv("MLM_ROOT_TELEGRAM_ID", str(ROOT))
    monkeypatch.delenv("MLM_PLAN", raising=False)
    return db


def _staged_then(monkeypatch, statement: str) -> None:
    """The compute stage's documents changed after their COPY: what is staged is wrong."""
    real = load.stage_documents

    def stage_then_change(connection, documents, table):
        real(connection, documents, table)
        connection.execute(statement.format(table=load.quoted(table)))

    monkeypatch.setattr(load, "stage_documents", stage_then_change)


def _merged_then(monkeypatch, statement) -> None:
    """The merging UPDATE's result changed before validation (``statement``: SQL, or a callable)."""
    real = load.merge_documents

    def merge_then_change(connection, table):
        written = real(connection, table)
        statement() if callable(statement) else connection.execute(statement)
        return written

    monkeypatch.setattr(load, "merge_documents", merge_then_change)


def _failed_run(db, capsys, expected: set[tuple[int, str]], before: dict, untouched: dict) -> None:
    """The run exited 1 saying which checks and users; its ledger row is ``failed`` with exactly
    ``expected`` stored; no user's stored values and no other table moved."""
    code = cli.main(RUN)
    said = [line for line in capsys.readouterr().err.splitlines() if " stage " not in line]  # progress lines
    assert code == cli.EXIT_FAILED, said
    checks = sorted({check for _, check in expected})
    users = ", ".join(str(u) for u in sorted({u for u, _ in expected}))
    assert said[0] == f"mlm-recompute: run 1: validation failed before commit; nothing was written: {len(expected)} failure(s) in {checks}; userIDs {users}", said
    assert {(int(line.split()[1].rstrip(":")), line.split()[2].rstrip(":")) for line in said[1:]} == expected
    assert len(said) == 1 + len(expected) and "Traceback" not in "".join(said)
    with db.connect_raw() as c:
        runs = c.execute("SELECT run_id, mode, status, verified, users_changed, error FROM mlm_runs").fetchall()
        stored = set(c.execute("SELECT user_id, check_name FROM mlm_validation_failures WHERE run_id = 1").fetchall())
        staging = c.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'mlm_staging_%'").fetchone()[0]
    assert [r[:5] for r in runs] == [(1, "nightly", "failed", None, None)] and runs[0][5] == said[0].removeprefix("mlm-recompute: ")
    assert stored == expected
    assert staging == 0
    assert readback.stored_users(db) == before
    assert readback.table_fingerprints(db, UNTOUCHED) == untouched


@pytest.mark.parametrize("case", list(CASES))
def test_each_check_refuses_the_corruption_it_guards(platform, monkeypatch, capsys, case):
    prepare, staged, merged, expected = CASES[case]
    if prepare:
        with platform.connect_raw() as c:
            c.execute(prepare)
    before, untouched = readback.stored_users(platform), readback.table_fingerprints(platform, UNTOUCHED)
    if staged:
        _staged_then(monkeypatch, staged)
    if merged:
        _merged_then(monkeypatch, merged)
    _failed_run(platform, capsys, expected, before, untouched)


# A merge that got one column wrong: the failure names that column (what a person fixes).
NAMED = {
    "an owned mlmStatus key": (
        """UPDATE users SET "mlmStatus" = ("mlmStatus"::jsonb || '{"lastActiveMonth": "1999-01"}')::json WHERE "userID" = 2""",
        "stored_equals_computed", "stored differs from computed: mlmStatus",
    ),
    "an owned mlmVolumes key": (
        """UPDATE users SET "mlmVolumes" = ("mlmVolumes"::jsonb || '{"monthlyPV": "9.99"}')::json WHERE "userID" = 2""",
        "stored_equals_computed", "stored differs from computed: mlmVolumes",
    ),
    "an owned column": ("""UPDATE users SET "isActive" = NOT "isActive" WHERE "userID" = 2""", "stored_equals_computed", "stored differs from computed: isActive"),
    "a foreign mlmStatus key": (
        """UPDATE users SET "mlmStatus" = ("mlmStatus"::jsonb || '{"isFounder": false}')::json WHERE "userID" = 2""",
        "foreign_keys_kept", "changed what it does not own: mlmStatus",
    ),
    "a foreign mlmVolumes key": (
        """UPDATE users SET "mlmVolumes" = ("mlmVolumes"::jsonb - 'autoship')::json WHERE "userID" = 2""",
        "foreign_keys_kept", "changed what it does not own: mlmVolumes",
    ),
    "a column it does not own": (
        """UPDATE users SET "email" = 'moved@example.com' WHERE "userID" = 2""",
        "foreign_keys_kept", "changed what it does not own: columns the recompute does not own",
    ),
}  # fmt: skip
# ...and a compute stage that staged a key the recompute does not own (the merge writes it too)
NAMED_STAGED = {
    "a document that is not an object": ("""UPDATE {table} SET total_volume = '[]' WHERE user_id = 2""", "a JSON column is not an object after the write"),
    "a staged mlmStatus key": (
        """UPDATE {table} SET mlm_status = mlm_status || '{{"isFounder": false}}' WHERE user_id = 2""",
        "changed what it does not own: mlmStatus, staged mlmStatus",
    ),
    "a staged mlmVolumes key": (
        """UPDATE {table} SET mlm_volumes = mlm_volumes || '{{"autoship": null}}' WHERE user_id = 2""",
        "changed what it does not own: mlmVolumes, staged mlmVolumes",
    ),
}


@pytest.mark.parametrize("case", list(NAMED) + list(NAMED_STAGED))
def test_a_failure_names_the_column_that_differs(platform, monkeypatch, capsys, case):
    if case in NAMED:
        merged, check, detail = NAMED[case]
        _merged_then(monkeypatch, merged)
    else:
        (staged, detail), check = NAMED_STAGED[case], "foreign_keys_kept" if "key" in case else "has_documents"
        _staged_then(monkeypatch, staged)
    before, untouched = readback.stored_users(platform), readback.table_fingerprints(platform, UNTOUCHED)
    _failed_run(platform, capsys, {(2, check)}, before, untouched)
    with platform.connect_raw() as c:
        assert c.execute("SELECT detail FROM mlm_validation_failures WHERE run_id = 1").fetchall() == [(detail,)]


def test_an_owned_key_left_unstaged_then_changed_by_the_merge_is_still_refused(platform, monkeypatch, capsys):
    # The compute stage left lastActiveMonth out of user 2's staged mlmStatus (the merge keeps the
    # prior value), then the merge's result got another value there. No staged value differs and
    # no foreign key moved, yet the stored document is not the prior one merged with the staged
    # one: the screen catches it and the failure says so.
    _staged_then(monkeypatch, "UPDATE {table} SET mlm_status = mlm_status - 'lastActiveMonth' WHERE user_id = 2")
    _merged_then(monkeypatch, """UPDATE users SET "mlmStatus" = ("mlmStatus"::jsonb || '{"lastActiveMonth": "1999-01"}')::json WHERE "userID" = 2""")
    before, untouched = readback.stored_users(platform), readback.table_fingerprints(platform, UNTOUCHED)
    _failed_run(platform, capsys, {(2, "stored_equals_computed")}, before, untouched)
    with platform.connect_raw() as c:
        detail = c.execute("SELECT detail FROM mlm_validation_failures WHERE run_id = 1").fetchall()
    assert detail == [("stored documents differ from the prior ones merged with the computed ones",)]


def test_a_user_without_a_rank_failing_another_check_is_not_said_to_have_fallen(platform, monkeypatch, capsys):
    # Naming what failed reads the NULL rank as the entry rank too: one failure, not a fall.
    with platform.connect_raw() as c:
        c.execute("""UPDATE users SET "rank" = NULL WHERE "userID" = 3""")
    before, untouched = readback.stored_users(platform), readback.table_fingerprints(platform, UNTOUCHED)
    _merged_then(monkeypatch, """UPDATE users SET "isActive" = NOT "isActive" WHERE "userID" = 3""")
    _failed_run(platform, capsys, {(3, "stored_equals_computed")}, before, untouched)


def test_a_user_without_a_rank_is_written_the_entry_rank_and_passes_every_check(platform, capsys):
    # The platform's "rank" may be NULL: it counts as the entry rank, which is not a fall.
    with platform.connect_raw() as c:
        c.execute("""UPDATE users SET "rank" = NULL WHERE "userID" = 3""")
    assert cli.main(RUN) == cli.EXIT_OK, capsys.readouterr().err
    with platform.connect_raw() as c:
        assert c.execute("SELECT status, verified FROM mlm_runs").fetchall() == [("succeeded", True)]
    assert readback.stored_users(platform)[3]["rank"] == load_plan().rank_names[0]


def test_pioneer_slots_fire_when_the_pioneers_outnumber_the_plans_slots(platform, monkeypatch, capsys, tmp_path):
    # A plan of one slot: user 3's pack makes it the one pioneer; a second, numbered 2 and counted
    # by the root (so numbering and counter hold), is one more than the slots.
    plan_file = tmp_path / "one-slot.toml"
    plan_file.write_text(DEFAULT_PLAN.read_text().replace("pioneer_slots = 50", "pioneer_slots = 1"))
    assert load_plan(plan_file).pioneer_slots == 1
    monkeypatch.setenv("MLM_PLAN", str(plan_file))
    before, untouched = readback.stored_users(platform), readback.table_fingerprints(platform, UNTOUCHED)
    _staged_then(
        monkeypatch,
        f"""UPDATE {{table}} SET mlm_status = mlm_status || CASE user_id WHEN 2 THEN '{{{{{GRANT}, "pioneerNumber": 2}}}}'::jsonb
                                                             ELSE '{{{{"pioneerPurchasesCount": 2}}}}'::jsonb END
            WHERE user_id IN (1, 2)""",
    )
    _failed_run(platform, capsys, {(2, "pioneer_slots"), (3, "pioneer_slots")}, before, untouched)


def test_a_pioneer_granted_by_another_writer_during_the_run_fails_numbering_and_counter(platform, monkeypatch, capsys):
    # The platform's online code grants a pioneer (a new user, number 1) and commits while the
    # run's write transaction is open: two pioneers numbered 1, and the root counts one.
    def platform_grants_a_pioneer():
        granted = {"hasPioneerBonus": True, "pioneerPurchaseId": 1, "pioneerGrantedAt": "2025-10-02T10:00:00+00:00", "pioneerNumber": 1}
        insert_platform_rows(platform, [{"userID": 4, "telegramID": 9003, "upline": 9000, "rank": "start", "mlmStatus": granted}], [])

    before, untouched = readback.stored_users(platform), readback.table_fingerprints(platform, UNTOUCHED)
    _merged_then(monkeypatch, platform_grants_a_pioneer)
    code = cli.main(RUN)
    assert code == cli.EXIT_FAILED
    with platform.connect_raw() as c:
        stored = set(c.execute("SELECT user_id, check_name FROM mlm_validation_failures").fetchall())
        assert c.execute("SELECT status FROM mlm_runs").fetchall() == [("failed",)]
    assert stored == {(3, "pioneer_numbering"), (4, "pioneer_numbering"), (1, "pioneer_counter")}
    after = readback.stored_users(platform)
    assert after.pop(4)["mlmStatus"]["pioneerNumber"] == 1  # the other writer's commit stays
    assert after == before and "pioneer_counter" in capsys.readouterr().err
    others = [t for t in UNTOUCHED if t != "users"]
    assert readback.table_fingerprints(platform, others) == {t: untouched[t] for t in others}


def test_stored_equals_computed_after_commit_fires_on_a_write_between_commit_and_verification(platform, monkeypatch, capsys):
    # Committed, then another client rewrites user 2's volumes before the verification reads it.
    from flows import pipeline

    real_verify = pipeline.verify_stage

    def overwritten_then_verified(db, run_id):
        with db.connect_raw() as other:
            other.execute("""UPDATE users SET "mlmVolumes" = '{"monthlyPV": "0.00"}' WHERE "userID" = 2""")
        return real_verify(db, run_id)

    monkeypatch.setattr(pipeline, "verify_stage", overwritten_then_verified)
    assert cli.main(RUN) == cli.EXIT_FAILED
    said = [line for line in capsys.readouterr().err.splitlines() if " stage " not in line]
    assert said[0] == "mlm-recompute: run 1: validation failed after commit (the data was written): 1 failure(s) in ['stored_equals_computed']; userIDs 2"
    assert said[1].startswith("  user 2: stored_equals_computed: stored differs from computed: mlmVolumes") and len(said) == 2
    with platform.connect_raw() as c:
        assert c.execute("SELECT status, verified FROM mlm_runs").fetchall() == [("failed", False)]
        assert c.execute("SELECT user_id, check_name FROM mlm_validation_failures").fetchall() == [(2, "stored_equals_computed")]
    stored = readback.stored_users(platform)
    assert stored[2]["mlmVolumes"] == {"monthlyPV": "0.00"}  # the other client's write
    assert stored[3]["mlmStatus"]["pioneerNumber"] == 1 and str(stored[1]["fullVolume"]) == "5250.00"  # the run's, committed


def test_without_a_corruption_the_same_run_succeeds(platform, capsys, tmp_path, monkeypatch):
    # The control: the cases above fail only for what they corrupt (the builder rank of
    # rank_never_down and the one-slot plan of pioneer_slots included).
    with platform.connect_raw() as c:
        c.execute("""UPDATE users SET "rank" = 'builder' WHERE "userID" = 2""")
    plan_file = tmp_path / "one-slot.toml"
    plan_file.write_text(DEFAULT_PLAN.read_text().replace("pioneer_slots = 50", "pioneer_slots = 1"))
    monkeypatch.setenv("MLM_PLAN", str(plan_file))
    assert cli.main(RUN) == cli.EXIT_OK
    with platform.connect_raw() as c:
        assert c.execute("SELECT status, verified FROM mlm_runs").fetchall() == [("succeeded", True)]
    stored = readback.stored_users(platform)
    assert stored[2]["rank"] == "builder" and stored[3]["mlmStatus"]["pioneerNumber"] == 1
    assert stored[1]["mlmStatus"]["pioneerPurchasesCount"] == 1


def test_a_validation_failure_raised_in_process_names_the_same_checks(platform, monkeypatch):
    # The exception the flows see carries the failures the CLI printed.
    from tests.db.small_platform import nightly

    _staged_then(monkeypatch, CASES["pioneer_counter"][1])
    with pytest.raises(ValidationFailed) as failed:
        nightly(platform)
    assert [(f["user_id"], f["check_name"], f["detail"]) for f in failed.value.failures] == [(1, "pioneer_counter", "root counts 5 pioneers, 1 hold the status")]


def test_twelve_pioneers_numbered_1_to_12_pass_the_numbering_check(db, monkeypatch, capsys):
    # Numbers are compared as numbers: in text order "10" sorts before "2", which must not read
    # as a gap in the numbering.
    buyers = [{"userID": u, "telegramID": 9000 + u, "upline": ROOT, "rank": "start"} for u in range(2, 14)]
    purchases = [{"purchaseID": u, "userID": u, "packPrice": "5000.00", "createdAt": f"2025-10-02T10:{u:02d}:00"} for u in range(2, 14)]
    insert_platform_rows(db, [USERS[0], *buyers], purchases)
    monkeypatch.setenv("MLM_DATABASE_URL", db.uri)
    monkeypatch.setenv("MLM_ROOT_TELEGRAM_ID", str(ROOT))
    monkeypatch.delenv("MLM_PLAN", raising=False)
    assert cli.main(RUN) == cli.EXIT_OK, capsys.readouterr().err
    stored = readback.stored_users(db)
    assert sorted(stored[u]["mlmStatus"]["pioneerNumber"] for u in range(2, 14)) == list(range(1, 13))
    assert stored[1]["mlmStatus"]["pioneerPurchasesCount"] == 12
    with db.connect_raw() as c:
        assert c.execute("SELECT status, verified FROM mlm_runs").fetchall() == [("succeeded", True)]


def test_on_jsonb_columns_a_total_volume_that_differs_is_named(platform, monkeypatch, capsys):
    # The platform's JSON columns may be jsonb: totalVolume is then compared as jsonb, not as text.
    with platform.connect_raw() as c:
        for column in ("mlmStatus", "mlmVolumes", "totalVolume"):
            c.execute(f'ALTER TABLE users ALTER COLUMN "{column}" TYPE jsonb USING "{column}"::jsonb')
    before, untouched = readback.stored_users(platform), readback.table_fingerprints(platform, UNTOUCHED)
    _merged_then(monkeypatch, """UPDATE users SET "totalVolume" = "totalVolume" || '{"gap": 1}' WHERE "userID" = 2""")
    _failed_run(platform, capsys, {(2, "stored_equals_computed")}, before, untouched)


def test_slots_and_numbering_both_fire_and_both_are_reported(platform, monkeypatch, capsys, tmp_path):
    # Two pioneers under a one-slot plan, both numbered 1: every failure is kept, not the last check's.
    plan_file = tmp_path / "one-slot.toml"
    plan_file.write_text(DEFAULT_PLAN.read_text().replace("pioneer_slots = 50", "pioneer_slots = 1"))
    monkeypatch.setenv("MLM_PLAN", str(plan_file))
    before, untouched = readback.stored_users(platform), readback.table_fingerprints(platform, UNTOUCHED)
    _staged_then(
        monkeypatch,
        f"""UPDATE {{table}} SET mlm_status = mlm_status || CASE user_id WHEN 2 THEN '{{{{{GRANT}, "pioneerNumber": 1}}}}'::jsonb
                                                             ELSE '{{{{"pioneerPurchasesCount": 2}}}}'::jsonb END
            WHERE user_id IN (1, 2)""",
    )
    expected = {(2, "pioneer_slots"), (3, "pioneer_slots"), (2, "pioneer_numbering"), (3, "pioneer_numbering")}
    _failed_run(platform, capsys, expected, before, untouched)


def test_a_root_row_that_is_gone_fails_the_counter_naming_the_root(platform):
    # The pioneer check of a root no row holds (deleted by another writer): a failure, not a crash.
    from db import validate

    with platform.connect_raw() as c:
        failures = validate._pioneer_failures(c, load_plan(), root_user_id=424242)
    assert failures == [{"user_id": 424242, "check_name": "pioneer_counter", "detail": "root counts None pioneers, 0 hold the status"}]
