"""The Prefect flows, run for real under one Prefect test server, asserting on PostgreSQL."""

from __future__ import annotations

import importlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from db import readback
from db.connection import scratch_database
from db.periods import PeriodRefused
from db.scenario_data import insert_platform_rows

ROOT = 9000
NOW = datetime(2025, 11, 20, tzinfo=timezone.utc)
USERS = [
    {"userID": 1, "telegramID": 9000, "upline": 9000, "rank": "start"},
    {"userID": 2, "telegramID": 9001, "upline": 9000, "rank": "start", "mlmStatus": {"isFounder": True}},
    {"userID": 3, "telegramID": 9002, "upline": 9001, "rank": "start"},
    {"userID": 4, "telegramID": 9003, "upline": 9001, "rank": "start"},
]
# User 2 qualifies for builder in September (PV 1,000, two legs of 25,000, both active) and is
# inactive in October: its October rank must stay builder.
PURCHASES = [
    {"purchaseID": 1, "userID": 2, "packPrice": "300.00", "createdAt": "2025-08-05T10:00:00"},
    {"purchaseID": 2, "userID": 2, "packPrice": "700.00", "createdAt": "2025-09-05T10:00:00"},
    {"purchaseID": 3, "userID": 3, "packPrice": "25000.00", "createdAt": "2025-09-06T10:00:00"},
    {"purchaseID": 4, "userID": 4, "packPrice": "25000.00", "createdAt": "2025-09-07T10:00:00"},
    {"purchaseID": 5, "userID": 3, "packPrice": "500.00", "createdAt": "2025-10-06T10:00:00"},
]


def _platform(db, monkeypatch):
    insert_platform_rows(db, USERS, PURCHASES)
    monkeypatch.setenv("MLM_DATABASE_URL", db.uri)
    monkeypatch.setenv("MLM_ROOT_TELEGRAM_ID", str(ROOT))
    return db


@pytest.fixture
def platform(db, monkeypatch, prefect_server):
    return _platform(db, monkeypatch)


def _snapshot(db, period: str) -> dict:
    rows = readback.snapshot_rows(db, period)
    ignored = {"run_id", "is_final", "as_of", "fingerprint"}  # who wrote the row, not its values
    return {u: {k: v for k, v in r.items() if k not in ignored} for u, r in rows.items()}


def test_nightly_writes_verifies_and_reports(platform):
    from flows.nightly import nightly

    summary = nightly(as_of=datetime(2025, 9, 20, tzinfo=timezone.utc))
    assert summary["verified"] is True and summary["users_written"] == 4
    stored = readback.stored_users(platform)
    assert stored[2]["mlmStatus"]["isFounder"] is True and stored[2]["rank"] == "builder"
    with platform.connect_raw() as c:
        assert c.execute("SELECT mode, status, verified FROM mlm_runs").fetchall() == [("nightly", "succeeded", True)]


def test_close_is_idempotent_and_refuses_a_changed_month(platform):
    from flows.periods import close

    first = close("2025-09", now=NOW)
    assert first["already_closed"] is False and first["snapshot_rows"] == 4
    with platform.connect_raw() as c:
        # the closed mark and its event name the run that closed the month
        assert c.execute("SELECT is_closed, close_run_id FROM mlm_periods WHERE period = '2025-09'").fetchall() == [(True, first["run_id"])]
        assert c.execute("SELECT event, run_id FROM mlm_period_events WHERE period = '2025-09'").fetchall() == [("closed", first["run_id"])]
        stats = c.execute("""SELECT "userID", "personalVolume"::text, "teamVolume"::text, "activeRank", "wasActive", "totalTeamSize" FROM monthly_stats ORDER BY 1""").fetchall()
    # the root has no row (the platform's monthly job skips it too)
    assert [r[0] for r in stats] == [2, 3, 4] and stats[0] == (2, "700.00", "50000.00", "builder", 1, 2)
    before = readback.table_fingerprints(platform, ["mlm_period_snapshots", "monthly_stats"])
    assert close("2025-09", now=NOW)["already_closed"] is True  # same inputs: nothing changes
    assert readback.table_fingerprints(platform, ["mlm_period_snapshots", "monthly_stats"]) == before
    with platform.connect_raw() as c:
        c.execute("""INSERT INTO purchases ("purchaseID", "userID", "packPrice", "createdAt", "optionID", "projectID", "packQty") VALUES (9, 4, 50.00, '2025-09-20 10:00', 1, 1, 1)""")
    with pytest.raises(PeriodRefused, match=r"2025-09 is closed.*3 users.*user 4: personal_volume_total 25000.00 -> 25050.00"):
        close("2025-09", now=NOW)
    assert readback.table_fingerprints(platform, ["mlm_period_snapshots", "monthly_stats"]) == before


def test_open_and_future_months_cannot_be_closed(platform):
    from flows.periods import close

    with pytest.raises(PeriodRefused, match="2025-11 has not ended"):
        close("2025-11", now=NOW)
    with pytest.raises(ValueError, match="not a month"):
        close("2025-13", now=NOW)


def test_only_the_latest_closed_month_reopens(platform):
    from flows.periods import close, reopen

    close("2025-08", now=NOW)
    close("2025-09", now=NOW)
    with pytest.raises(PeriodRefused, match=r"only the most recently closed month \(2025-09\)"):
        reopen("2025-08", reason="late refund")
    reopen("2025-09", reason="late refund", actor="ops")
    with platform.connect_raw() as c:
        events = c.execute("SELECT period, event, actor, reason FROM mlm_period_events ORDER BY event_id").fetchall()
    assert events[-1] == ("2025-09", "reopened", "ops", "late refund")
    assert close("2025-09", now=NOW)["already_closed"] is False  # closable again once reopened


def test_a_backfill_matches_separate_closes(platform, server_uri, template_name, monkeypatch):
    from flows.periods import backfill, close

    months = ["2025-08", "2025-09", "2025-10"]
    result = backfill("2025-08", "2025-10", now=NOW)
    assert result["months"] == months and result["skipped_closed"] == []
    backfilled = {m: _snapshot(platform, m) for m in months}
    assert backfilled["2025-09"][2]["rank"] == "builder" and backfilled["2025-10"][2]["rank"] == "builder"
    assert backfilled["2025-10"][2]["is_active"] is False  # inactive, yet the rank never goes down
    with scratch_database(server_uri, prefix="mlm_test", template=template_name) as other:
        _platform(other, monkeypatch)
        for m in months:
            close(m, now=NOW)
        closed = {m: _snapshot(other, m) for m in months}
        for m in months:
            for u in backfilled[m]:
                assert closed[m][u] == backfilled[m][u], (m, u)


def test_a_backfill_never_rewrites_a_closed_month(platform):
    from flows.periods import backfill, close

    close("2025-09", now=NOW)
    before = readback.table_fingerprints(platform, ["monthly_stats"]), _snapshot(platform, "2025-09"), readback.snapshot_rows(platform, "2025-09")
    result = backfill("2025-08", "2025-10", reprocess="all", now=NOW)
    assert result["skipped_closed"] == ["2025-09"] and result["months"] == ["2025-08", "2025-10"]
    after = readback.table_fingerprints(platform, ["monthly_stats"]), _snapshot(platform, "2025-09"), readback.snapshot_rows(platform, "2025-09")
    assert after == before
    assert set(after[2]) == {1, 2, 3, 4} and {row["is_final"] for row in after[2].values()} == {True}  # the close's final rows, every user's


def test_a_run_late_on_the_last_day_belongs_to_that_month(platform):
    # 23:30 UTC on 31 October is October, whatever the local clock says (here UTC+2: 01:30 on 1 November).
    from flows.nightly import nightly

    late = datetime(2025, 11, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert nightly(as_of=late)["period"] == "2025-10"
    assert set(readback.snapshot_rows(platform, "2025-10")) == {1, 2, 3, 4}
    assert readback.snapshot_rows(platform, "2025-11") == {}


def test_prefect_yaml_parses_and_every_entrypoint_imports():
    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in config["deployments"]}
    assert set(deployments) == {"nightly", "month-end-close", "backfill", "compare-plans"}
    for deployment in deployments.values():
        path, name = deployment["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert callable(getattr(module, name)), deployment["entrypoint"]
        assert all(s["timezone"] == "UTC" for s in deployment["schedules"])
        # every deployment reads the database URL from Prefect's Secret block, not the worker's env
        assert deployment["work_pool"]["job_variables"]["env"]["MLM_DATABASE_URL_SECRET"] == "mlm-database-url"
    for writing in ("nightly", "month-end-close", "backfill"):  # one at a time: they take the run lock
        assert deployments[writing]["concurrency_limit"] == 1
    assert deployments["compare-plans"]["schedules"] == []  # a sandbox, run by hand
    assert deployments["nightly"]["schedules"][0]["cron"] == "0 2 * * *"
    assert deployments["month-end-close"]["schedules"][0]["cron"] == "0 3 1 * *"
    assert deployments["backfill"]["schedules"] == []


def test_a_backfill_on_a_dask_cluster_matches_one_on_threads(platform, server_uri, template_name, monkeypatch):
    # The months run on a local two-worker Dask cluster (separate processes) through prefect-dask.
    from distributed import LocalCluster

    from flows.periods import backfill, backfill_task_runner

    months = ["2025-08", "2025-09", "2025-10"]
    backfill("2025-08", "2025-10", now=NOW)
    on_threads = {m: _snapshot(platform, m) for m in months}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with scratch_database(server_uri, prefix="mlm_test", template=template_name) as other:
            _platform(other, monkeypatch)
            on_dask = backfill.with_options(task_runner=backfill_task_runner(cluster.scheduler_address))
            assert on_dask("2025-08", "2025-10", now=NOW)["months"] == months
            assert {m: _snapshot(other, m) for m in months} == on_threads
        assert cluster.scheduler.task_prefixes, "the months did not run on the cluster"
