"""The nightly recompute as a Prefect flow: the month of the cut-off, every user's documents."""

from __future__ import annotations

import tempfile
from datetime import datetime, timezone

from prefect import flow

from flows.config import Settings, load_plan
from flows.context import opened_database
from flows.pipeline import recorded_run, remembers_purchases
from flows.tasks import column_limits_task, compute_task, extract_task, report_task, verify_task, write_task
from transforms.recompute import period_of


@flow(name="mlm-nightly", log_prints=True)
def nightly(as_of: datetime | None = None, dry_run: bool = False, quarantine: bool = False, wait: bool = False) -> dict:
    """Recompute the month containing ``as_of`` (default: now, UTC) and write every user's
    documents in one validated transaction; verify after commit. Returns the run's summary."""
    settings = Settings.from_env()
    plan = load_plan(settings.plan_path)
    as_of = (as_of or datetime.now(timezone.utc)).astimezone(timezone.utc)
    period = period_of(as_of)
    with opened_database(settings, "read" if dry_run else "write", quiet=True) as db, tempfile.TemporaryDirectory(prefix="mlm-run-") as folder:
        with recorded_run(db, plan, mode="nightly", period=period, as_of=as_of, dry_run=dry_run, wait=wait) as run:
            watermark = extract_task(db.uri, plan, as_of, folder, remembers_purchases("nightly", dry_run))
            computed = compute_task(folder, plan, run.run_id, as_of, period, settings.root_telegram_id, quarantine)
            left_out = column_limits_task(db.uri, folder, quarantine)
            written = write_task(db.uri, folder, plan, run.run_id, watermark, False, dry_run)
            verified = None if dry_run else verify_task(db.uri, run.run_id)
            run.outcome = {
                "mode": "nightly",
                "run_id": run.run_id,
                "status": "dry run" if dry_run else "succeeded",
                "period": period,
                "as_of": as_of.isoformat(),
                "dry_run": dry_run,
                "plan_version": plan.version,
                "watermark": watermark,
                "users_computed": computed["users"],
                "users_compared": written["users_staged"],
                "users_written": written["users_written"],
                "changes": written["changes"],
                "rank_history_rows": written["rank_history_rows"],
                "snapshot_rows": written["snapshot_rows"],
                "quarantined": computed["quarantined"] + left_out,
                "verified": verified,
            }
        report_task(run.outcome)
        return run.outcome
