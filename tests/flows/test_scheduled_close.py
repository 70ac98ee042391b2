"""The scheduled month-end close (``close_previous_month``, the ``month-end-close`` deployment at
03:00 UTC on the 1st) run with explicit run dates, the January-to-December rollover included;
and backfill's ``reprocess`` modes and its dry run, read back from the database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from db import readback
from tests.flows.test_flows import NOW, _platform

UTC = timezone.utc


@pytest.fixture
def platform(db, monkeypatch, prefect_server):
    return _platform(db, monkeypatch)


def _closed(db) -> list[tuple]:
    with db.connect_raw() as c:
        return c.execute("SELECT period, is_closed FROM mlm_periods ORDER BY period").fetchall()


def _ledger(db) -> list[tuple]:
    with db.connect_raw() as c:
        return c.execute("SELECT mode, status, period FROM mlm_runs ORDER BY run_id").fetchall()


def _rows_per_month(db) -> dict[str, int]:
    with db.connect_raw() as c:
        return dict(c.execute("SELECT period, count(*) FROM mlm_period_snapshots GROUP BY 1").fetchall())


@pytest.mark.parametrize(
    "now, month",
    [
        (datetime(2026, 1, 1, 3, 0, tzinfo=UTC), "2025-12"),  # the rollover: January closes last year's December
        (datetime(2025, 3, 1, 3, 0, tzinfo=UTC), "2025-02"),
        (datetime(2025, 12, 31, 23, 59, tzinfo=UTC), "2025-11"),  # the last minute of a month is still that month
        (datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=2))), "2025-11"),  # 23:00 UTC on 31 December
    ],
    ids=["January closes December", "March closes February", "31 December closes November", "a local clock past midnight"],
)
def test_the_previous_month_of_a_run_date_is_the_month_that_ended(now, month):
    from flows.periods import previous_month

    assert previous_month(now) == month


def test_the_deployment_runs_the_scheduled_close_at_3_on_the_1st_with_no_parameters():
    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "prefect.yaml").read_text())
    [deployment] = [d for d in config["deployments"] if d["name"] == "month-end-close"]
    assert deployment["entrypoint"] == "flows/periods.py:close_previous_month"
    assert deployment["parameters"] == {}  # the run date is the flow run's own clock
    assert deployment["schedules"] == [{"cron": "0 3 1 * *", "timezone": "UTC"}]


def test_the_scheduled_close_on_1_january_closes_december_of_the_year_before(platform):
    from flows.periods import close_previous_month

    summary = close_previous_month(now=datetime(2026, 1, 1, 3, 0, tzinfo=UTC))
    assert (summary["period"], summary["status"], summary["already_closed"], summary["snapshot_rows"]) == ("2025-12", "succeeded", False, 4)
    assert summary["as_of"] == "2026-01-01T00:00:00+00:00"
    assert _closed(platform) == [("2025-12", True)]
    assert _ledger(platform) == [("close", "succeeded", "2025-12")]
    rows = readback.snapshot_rows(platform, "2025-12")
    assert set(rows) == {1, 2, 3, 4} and {r["is_final"] for r in rows.values()} == {True}
    assert readback.snapshot_rows(platform, "2025-11") == {}  # only the month that ended


def test_the_scheduled_close_run_twice_on_the_same_date_closes_once(platform):
    from flows.periods import close_previous_month

    first = close_previous_month(now=datetime(2025, 11, 1, 3, 0, tzinfo=UTC))
    before = readback.table_fingerprints(platform, ["mlm_period_snapshots", "monthly_stats", "mlm_periods"])
    again = close_previous_month(now=datetime(2025, 11, 1, 3, 5, tzinfo=UTC))  # a retried flow run
    assert (first["period"], first["already_closed"], again["period"], again["already_closed"]) == ("2025-10", False, "2025-10", True)
    assert readback.table_fingerprints(platform, ["mlm_period_snapshots", "monthly_stats", "mlm_periods"]) == before
    with platform.connect_raw() as c:
        stats = c.execute("""SELECT "userID", "personalVolume"::text FROM monthly_stats WHERE month = '2025-10' ORDER BY 1""").fetchall()
    assert stats == [(2, "0.00"), (3, "500.00"), (4, "0.00")]  # the root has none


def test_a_close_before_the_month_ends_is_refused_in_the_ledger(platform):
    # The scheduled close always names a month that has ended; the rule it relies on, given a
    # clock one minute before the month's end:
    from db.periods import PeriodRefused
    from flows.periods import close

    with pytest.raises(PeriodRefused, match="2025-11 has not ended"):
        close("2025-11", now=datetime(2025, 11, 30, 23, 59, tzinfo=UTC))
    assert _closed(platform) == [] and _ledger(platform) == [("close", "refused", "2025-11")]
    assert _rows_per_month(platform) == {}


def test_backfill_reprocess_modes_choose_the_months_to_compute(platform):
    from flows.periods import backfill

    first = backfill("2025-08", "2025-08", now=NOW)
    assert first["months"] == ["2025-08"] and _rows_per_month(platform) == {"2025-08": 4}
    # missing: only the month without snapshots
    missing = backfill("2025-08", "2025-09", reprocess="missing", now=NOW)
    assert (missing["months"], missing["skipped_present"], missing["snapshot_rows_by_month"]) == (["2025-09"], ["2025-08"], {"2025-09": 4})
    # a late purchase in August: missing leaves August's snapshot as it is, all rewrites it
    with platform.connect_raw() as c:
        c.execute("""INSERT INTO purchases ("purchaseID", "userID", "packPrice", "createdAt", "optionID", "projectID", "packQty")
                     VALUES (20, 4, 75.00, '2025-08-20 10:00', 1, 1, 1)""")
    assert backfill("2025-08", "2025-09", reprocess="missing", now=NOW)["months"] == []
    assert str(readback.snapshot_rows(platform, "2025-08")[4]["personal_volume_total"]) == "0.00"
    every = backfill("2025-08", "2025-09", reprocess="all", now=NOW)
    assert every["months"] == ["2025-08", "2025-09"] and every["skipped_present"] == []
    # only the rows whose values changed are rewritten: user 4 and its upline, in both months
    assert every["snapshot_rows_by_month"] == {"2025-08": 3, "2025-09": 3}
    assert str(readback.snapshot_rows(platform, "2025-08")[4]["personal_volume_total"]) == "75.00"
    # failed: no backfill failed, so only missing months (none) are computed
    assert backfill("2025-08", "2025-09", reprocess="failed", now=NOW)["months"] == []
    assert [status for _, status, _ in _ledger(platform)] == ["succeeded"] * 5


def test_a_backfill_dry_run_computes_and_writes_nothing(platform):
    from flows.periods import backfill

    before = readback.table_fingerprints(platform, ["mlm_period_snapshots", "mlm_runs", "users", "monthly_stats"])
    summary = backfill("2025-08", "2025-10", dry_run=True, now=NOW)
    assert (summary["status"], summary["run_id"], summary["dry_run"]) == ("dry run", 0, True)
    assert summary["months"] == ["2025-08", "2025-09", "2025-10"]
    assert summary["snapshot_rows_by_month"] == {"2025-08": 4, "2025-09": 4, "2025-10": 4}  # what a backfill would write
    assert readback.table_fingerprints(platform, ["mlm_period_snapshots", "mlm_runs", "users", "monthly_stats"]) == before
