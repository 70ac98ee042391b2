"""Month-end close, reopen and backfill as Prefect flows.

A month is computed as of its end (the 1st of the next month, 00:00 UTC). Its previous ranks are
the snapshot ranks of the month before (never today's stored rank), so closing months one by one
and backfilling them in one go give the same snapshots.

A close or backfill refused by a period rule (a month that has not ended, a closed month that
would change) is recorded in the ledger as ``refused`` with the reason, like any refused run; a
dry run records nothing.
"""

from __future__ import annotations

import getpass
import re
import tempfile
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
from prefect import flow, task

from db import extract, ledger, periods
from db.connection import open_database
from db.unit_of_work import UnitOfWork, write_connection
from db.load import write_snapshots
from flows import pipeline
from flows import progress as stage_progress
from flows.config import Settings, load_plan
from flows.context import opened_database
from flows.tasks import IO_TASK, report_task
from flows.workspace import Workspace
from transforms.plan import Plan
from transforms.ranks import carried_ranks
from transforms.recompute import Recomputed, with_held_ranks, with_previous_ranks

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def parse_month(text: str) -> str:
    """A ``YYYY-MM`` month, or a clear error."""
    if not isinstance(text, str) or not _MONTH.match(text):
        raise ValueError(f"not a month: {text!r}; write it as YYYY-MM, e.g. 2025-10")
    return text


def month_end(period: str) -> datetime:
    """The instant a month ends: the first of the next month, 00:00 UTC (exclusive cut-off)."""
    year, month = int(period[:4]), int(period[5:7])
    return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=timezone.utc)


def months_between(first: str, last: str) -> list[str]:
    """Every month from ``first`` to ``last`` inclusive."""
    parse_month(first), parse_month(last)
    if first > last:
        raise ValueError(f"--from {first} is after --to {last}")
    months, year, month = [], int(first[:4]), int(first[5:7])
    while f"{year:04d}-{month:02d}" <= last:
        months.append(f"{year:04d}-{month:02d}")
        year, month = year + month // 12, month % 12 + 1
    return months


def _refuse_unended(period: str, now: datetime) -> None:
    if month_end(period) > now:
        raise periods.PeriodRefused(f"{period} has not ended (it ends {month_end(period).isoformat()}); only ended months can be closed or backfilled")


@task(name="compute month", **IO_TASK)
def month_task(uri: str, plan: Plan, period: str, folder: str, root_telegram_id: int | None, carry_from_snapshot: bool) -> str:
    """Extract and compute one month as of its end into ``folder``; the result's tag.

    With ``carry_from_snapshot`` the previous ranks are the month before's snapshot ranks (a
    close); without, every user starts at the entry rank and the backfill carries ranks after.
    """
    db = open_database(uri)
    try:
        inputs, _ = pipeline.extract_stage(db, plan, month_end(period))
        previous = periods.previous_ranks(db, period) if carry_from_snapshot else pl.DataFrame(schema={"user_id": pl.Int64, "previous_rank": pl.String})
    finally:
        db.engine.dispose()
    inputs = with_previous_ranks(inputs, previous, plan)
    result = pipeline.compute_stage(inputs, plan, run_id=0, as_of=month_end(period), period=period, root_telegram_id=root_telegram_id, quarantine=False)
    Workspace(Path(folder)).save_result(result, tag=period)
    return period


def _watermark_fingerprint(db, period: str, plan: Plan) -> str:
    with extract.snapshot(db) as cursor:
        cursor.execute(extract.WATERMARK_SQL, parameters=(extract.naive_utc(month_end(period)),))
        max_id, purchases, users = cursor.fetchone()
    return f"plan={plan.version};max_purchase_id={max_id};purchases={purchases};users={users}"


@flow(name="mlm-close", log_prints=True)
def close(month: str, now: datetime | None = None) -> dict:
    """Close an ended month: its final snapshot and ``monthly_stats``, the month marked closed.
    Closing again with the same result changes nothing; a different result is refused with the
    difference shown (reopen it first)."""
    period = parse_month(month)
    settings = Settings.from_env()
    plan = load_plan(settings.plan_path)
    as_of = month_end(period)
    with opened_database(settings, "write", quiet=True) as db, tempfile.TemporaryDirectory(prefix="mlm-close-") as folder:
        with pipeline.recorded_run(db, plan, mode="close", period=period, as_of=as_of, dry_run=False, wait=True) as run:
            _refuse_unended(period, now or datetime.now(timezone.utc))  # inside: the refusal is in the ledger
            month_task(db.uri, plan, period, folder, settings.root_telegram_id, True)
            result = Workspace(Path(folder)).result(tag=period)
            outcome = _close_month(db, plan, result, run.run_id)
            run.outcome = {"mode": "close", "run_id": run.run_id, "status": "succeeded", "period": period, "as_of": as_of.isoformat(), **outcome}
        report_task(run.outcome)
        return run.outcome


def _close_month(db, plan: Plan, result: Recomputed, run_id: int) -> dict:
    period = result.period
    if period in periods.closed_periods(db):
        difference = periods.snapshot_difference(periods.stored_snapshot(db, period), periods.computed_snapshot(result))
        if difference["users_differing"]:
            raise periods.PeriodRefused(
                f"{period} is closed and recomputing it now gives a different result for "
                f"{difference['users_differing']} users (by column: {difference['by_column']}); "
                + "; ".join(difference["examples"])
                + ". "
                f"Reopen it first (mlm-recompute reopen --month {period} --reason ...) if the change is intended."
            )
        return {"already_closed": True, "snapshot_rows": 0}
    with write_connection(db) as connection, UnitOfWork(connection) as uow:
        written = periods.write_final(connection, result, run_id, fingerprint=_watermark_fingerprint(db, period, plan))
        uow.commit()
    return {"already_closed": False, **written}


@flow(name="mlm-reopen")
def reopen(month: str, reason: str, actor: str | None = None) -> dict:
    """Reopen the most recently closed month, recording who and why."""
    period = parse_month(month)
    settings = Settings.from_env()
    with opened_database(settings, "write", quiet=True) as db:
        periods.reopen(db, period, actor=actor or getpass.getuser(), reason=reason)
    return {"period": period, "reopened": True, "reason": reason}


REPROCESS = ("missing", "failed", "all")


def _select_months(db, months: list[str], reprocess: str) -> tuple[list[str], list[str], list[str]]:
    """The months a backfill computes, the closed months it skips, and the open months it skips
    because they have snapshots that ``reprocess`` leaves as they are."""
    closed = set(periods.closed_periods(db))
    open_months = [m for m in months if m not in closed]
    skipped_closed = sorted(closed & set(months))
    if reprocess == "all":
        return open_months, skipped_closed, []
    with db.connect_raw() as connection:
        present = {r[0] for r in connection.execute("SELECT DISTINCT period FROM mlm_period_snapshots WHERE period = ANY(%s)", [open_months])}
        failed = {
            r[0]
            for r in connection.execute(
                """SELECT DISTINCT ON (m) m, status FROM mlm_runs, jsonb_array_elements_text(summary -> 'months') AS m
                   WHERE mode = 'backfill' AND summary ? 'months' ORDER BY m, run_id DESC"""
            )
            if r[1] != "succeeded"
        }
    wanted = {"missing": lambda m: m not in present, "failed": lambda m: m in failed or m not in present}
    if reprocess not in wanted:
        raise ValueError(f"reprocess must be missing, failed or all; got {reprocess!r}")
    selected = [m for m in open_months if wanted[reprocess](m)]
    return selected, skipped_closed, [m for m in open_months if m not in selected]


def _segments(months: list[str]) -> list[list[str]]:
    """Runs of consecutive months (a rank carries only from the month right before)."""
    segments: list[list[str]] = []
    for m in months:
        if segments and months_between(segments[-1][-1], m)[1:] == [m]:
            segments[-1].append(m)
        else:
            segments.append([m])
    return segments


def backfill_task_runner(dask_address: str | None):
    """Where a backfill's months run: a Dask cluster when an address is configured
    (``MLM_DASK_ADDRESS``), otherwise a thread pool in this process."""
    if dask_address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=dask_address)
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=4)


@flow(name="mlm-backfill", log_prints=True)
def backfill(from_month: str, to_month: str, reprocess: str = "missing", dry_run: bool = False, now: datetime | None = None) -> dict:
    """Rebuild the period snapshots of a range of ended months, each as of its end. Months are
    computed concurrently; the never-down rank is then carried through them in order. Closed
    months are skipped and listed; everything is written in one transaction. The summary lists
    the months computed (``months``), skipped (``skipped_closed``, ``skipped_present``) and the
    snapshot rows written per month (``snapshot_rows_by_month``)."""
    months = months_between(from_month, to_month)
    if reprocess not in REPROCESS:  # a usage error: refused before anything is opened or recorded
        raise ValueError(f"reprocess must be missing, failed or all; got {reprocess!r}")
    settings = Settings.from_env()
    plan = load_plan(settings.plan_path)
    # a dry run is read-only: it creates nothing and records nothing
    with opened_database(settings, "read" if dry_run else "write", quiet=True) as db, tempfile.TemporaryDirectory(prefix="mlm-backfill-") as folder:
        with pipeline.recorded_run(db, plan, mode="backfill", period=months[-1], as_of=month_end(months[-1]), dry_run=dry_run, wait=True) as run:
            _refuse_unended(months[-1], now or datetime.now(timezone.utc))  # inside: the refusal is in the ledger
            selected, skipped_closed, skipped_present = _select_months(db, months, reprocess)
            if run.run_id:  # the months are in the ledger however the backfill ends (--reprocess failed finds them)
                ledger.note_summary(db, run.run_id, {"mode": "backfill", "months": selected})
            futures = [month_task.submit(db.uri, plan, m, folder, settings.root_telegram_id, False) for m in selected]
            stage_progress.started("backfill months", total=len(selected), unit="months")
            for future in futures:
                future.result()
                stage_progress.advanced("backfill months")
            results = {m: Workspace(Path(folder)).result(tag=m) for m in selected}
            rows = _write_backfill(db, plan, results, run.run_id, dry_run)
            run.outcome = {
                "mode": "backfill",
                "run_id": run.run_id,
                "status": "dry run" if dry_run else "succeeded",
                "period": months[-1],
                "plan_version": plan.version,
                "reprocess": reprocess,
                "months_requested": months,
                "months": selected,
                "skipped_closed": skipped_closed,
                "skipped_present": skipped_present,
                "snapshot_rows_by_month": rows,
                "snapshot_rows": sum(rows.values()),
                "dry_run": dry_run,
            }
        report_task(run.outcome)
        return run.outcome


def carried_results(db, plan: Plan, results: dict[str, Recomputed]) -> dict[str, Recomputed]:
    """Each month's result with the never-down rank carried from the month before, in order."""
    carried: dict[str, Recomputed] = {}
    for segment in _segments(sorted(results)):
        per_month = pl.concat(
            results[m].state.select(pl.lit(m).alias("period"), "user_id", "qualified_rank_order", "is_active", "is_root") for m in segment
        )
        ranks = carried_ranks(per_month, periods.previous_ranks(db, segment[0]), plan)
        for m in segment:
            held = ranks.filter(pl.col("period") == m)
            carried[m] = replace(results[m], state=with_held_ranks(results[m].state, held, plan))
    return carried


def _write_backfill(db, plan: Plan, results: dict[str, Recomputed], run_id: int, dry_run: bool) -> dict[str, int]:
    """Write every month's snapshot in one transaction (rolled back for a dry run); the rows
    written per month, oldest first."""
    rows: dict[str, int] = {}
    carried = carried_results(db, plan, results)
    with write_connection(db) as connection, UnitOfWork(connection) as uow:
        for month in sorted(carried):
            rows[month] = write_snapshots(connection, carried[month], run_id, is_final=False)
        if not dry_run:
            uow.commit()
    return rows


def previous_month(now: datetime) -> str:
    """The month before the one ``now`` (UTC) falls in."""
    now = now.astimezone(timezone.utc)
    year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    return f"{year:04d}-{month:02d}"


@flow(name="mlm-close-previous-month")
def close_previous_month(now: datetime | None = None) -> dict:
    """The scheduled month-end close: close the month that ended before ``now`` (default: now)."""
    now = now or datetime.now(timezone.utc)
    return close(previous_month(now), now=now)
