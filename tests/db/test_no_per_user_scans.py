"""No statement of a run scans a platform table that has no index on "userID" once per user.

The platform of these tests is large enough (and analyzed) for the planner to prefer hash joins
wherever a statement allows them, so a plan that still repeats a sequential scan of
``purchases`` is the statement's own doing: a LATERAL or correlated look-up per user, which on
the platform's schema costs a scan of every purchase per written user.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from flows.config import load_plan
from flows.pipeline import run_period
from db.scenario_data import ensure_scenario_option
from tests.db import plan_guard

AS_OF = datetime(2025, 10, 20, tzinfo=timezone.utc)
ROOT = 100_000_001
USERS = 20_000


def _analyzed_platform(db, users: int = USERS) -> None:
    """A ternary tree of ``users``, three purchases each over two months, analyzed."""
    with db.connect_raw() as c:
        ensure_scenario_option(c.cursor())
        c.execute(
            """INSERT INTO users ("userID", "telegramID", "upline", "rank", "fullVolume", "personalVolumeTotal")
               SELECT g, 100000000 + g, 100000000 + greatest(1, g / 3), 'start', 0, 0 FROM generate_series(1, %s) AS g""",
            [users],
        )
        c.execute(
            """INSERT INTO purchases ("purchaseID", "userID", "optionID", "projectID", "packQty", "packPrice", "createdAt")
               SELECT g, 1 + g %% %s, 1, 1, 1, (ARRAY[50, 100, 200, 500, 1000])[1 + g %% 5],
                      '2025-09-01'::timestamp + (g %% 40000) * interval '1 minute'
               FROM generate_series(1, %s) AS g""",
            [users, 3 * users],
        )
    with db.connect_raw() as c:
        c.autocommit = True
        c.execute("ANALYZE")


def _run(db):
    return run_period(db, load_plan(), as_of=AS_OF, period="2025-10", root_telegram_id=ROOT)


def _assert_no_per_row_scans(guard: plan_guard.PlanGuard, db) -> None:
    plan_guard.explain_adbc_statements(guard, db.uri)
    assert guard.explained > 20, "the guard saw too few statements to mean anything"
    assert not guard.unexplained, guard.unexplained
    assert guard.found == []
    print(f"plan guard: {guard.explained} statements explained, {len(guard.adbc_statements)} of them ADBC")


@pytest.mark.slow
def test_a_first_and_a_nightly_run_never_scan_purchases_per_user(db, monkeypatch):
    _analyzed_platform(db)
    guard = plan_guard.PlanGuard()
    plan_guard.install(monkeypatch, guard)
    first = _run(db)
    assert first.users_written == USERS
    with db.connect_raw() as c:
        # 1% of users buy again: a nightly run writes them and their uplines
        c.execute(
            """INSERT INTO purchases ("purchaseID", "userID", "optionID", "projectID", "packQty", "packPrice", "createdAt")
               SELECT 1000000 + g, g * 100, 1, 1, 1, 300.00, '2025-10-10 10:00' FROM generate_series(1, %s) AS g""",
            [USERS // 100],
        )
    nightly = _run(db)
    assert 0 < nightly.users_written < USERS
    _assert_no_per_row_scans(guard, db)


@pytest.mark.slow
def test_a_close_and_an_audit_never_scan_platform_tables_per_user(db, monkeypatch, prefect_server, tmp_path):
    from flows.audit import audit_report
    from flows.periods import close

    _analyzed_platform(db)
    with db.connect_raw() as c:
        # the platform's commissions (bonuses has no index on "userID" either) and its own rows
        c.execute(
            """INSERT INTO bonuses ("userID", "bonusRate", "bonusAmount", "createdAt")
               SELECT 1 + g %% %s, 0.04, 4.00, '2025-09-10'::timestamp + g * interval '1 second' FROM generate_series(1, %s) AS g""",
            [USERS, USERS],
        )
        c.execute(
            """INSERT INTO monthly_stats ("createdAt", "userID", "month", "commissionsEarned", "bonusesEarned")
               SELECT '2025-10-01', g, '2025-09', 1.00, 2.00 FROM generate_series(2, %s, 7) AS g""",
            [USERS],
        )
    with db.connect_raw() as c:
        c.autocommit = True
        c.execute("ANALYZE")
    monkeypatch.setenv("MLM_DATABASE_URL", db.uri)
    monkeypatch.setenv("MLM_ROOT_TELEGRAM_ID", str(ROOT))
    guard = plan_guard.PlanGuard()
    plan_guard.install(monkeypatch, guard)
    closed = close("2025-09", now=AS_OF)
    assert closed["monthly_stats_inserted"] + closed["monthly_stats_updated"] == USERS - 1
    report = audit_report(db, load_plan(), AS_OF, ROOT, tmp_path)
    assert report["drift"]["status"] == "computed"
    _assert_no_per_row_scans(guard, db)


# The volume check this project once had: purchases summed per written user through LATERAL.
_PER_USER_LOOKUP = """SELECT w.user_id, b.cents FROM written AS w, LATERAL (
    SELECT sum(("packPrice" * 100)::bigint) AS cents FROM purchases WHERE "userID" = w.user_id) AS b"""


def test_the_guard_catches_a_per_user_lookup_into_purchases(db, monkeypatch):
    # The guard must be able to fail: the LATERAL look-up it exists to catch is caught.
    _analyzed_platform(db, users=2_000)
    guard = plan_guard.PlanGuard()
    plan_guard.install(monkeypatch, guard)
    with db.connect_raw() as c:
        c.execute("""CREATE TEMPORARY TABLE written AS SELECT "userID" AS user_id FROM users WHERE "userID" % 10 = 0""")
        c.execute("ANALYZE written")
        c.execute(_PER_USER_LOOKUP)
    assert [(f.table, f.via) for f in guard.found] == [("purchases", "nested loop")]
