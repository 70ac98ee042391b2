"""One period's recompute as plain steps: extract, compute, load. The Prefect flows compose these.

Kept free of Prefect so the CLI's ``scenario`` command and the tests can call it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from db import extract, ledger, load
from db.connection import Database
from transforms.documents import Provenance
from transforms.plan import Plan
from transforms.problems import InputRejected
from transforms.recompute import Recomputed, recompute


@dataclass
class RunOutcome:
    """What a run did: its id, status, counts, and the result it computed."""

    run_id: int
    status: str
    period: str
    as_of: datetime
    recomputed: Recomputed | None = None
    load: load.LoadResult | None = None
    watermark: extract.Watermark | None = None
    problems: list = field(default_factory=list)


def run_period(
    db: Database,
    plan: Plan,
    *,
    as_of: datetime,
    period: str,
    root_telegram_id: int | None,
    mode: str = "nightly",
    quarantine: bool = False,
    is_final: bool = False,
) -> RunOutcome:
    """Recompute ``period`` as of ``as_of`` and write it; raises InputRejected on bad input."""
    run_id = ledger.start_run(db, mode=mode, period=period, as_of=as_of, plan_version=plan.version, dry_run=False)
    try:
        inputs, watermark = extract.inputs(db, as_of, plan.pioneer_min_purchase_cents)
        provenance = Provenance(run_id=run_id, plan_version=plan.version, as_of=as_of, calculated_at=datetime.now(timezone.utc))
        result = recompute(
            inputs, plan, period=period, root_telegram_id=root_telegram_id, provenance=provenance, quarantine=quarantine
        )
        written = load.write_period(db, result, run_id, is_final=is_final)
    except InputRejected as rejected:
        ledger.finish_run(db, run_id, status="refused", error=str(rejected), summary={"problems": [p.as_dict() for p in rejected.problems]})
        raise
    except BaseException as error:
        ledger.finish_run(db, run_id, status="failed", error=f"{type(error).__name__}: {error}")
        raise
    ledger.finish_run(
        db,
        run_id,
        status="succeeded",
        users_changed=written.users_changed,
        max_purchase_id=watermark.max_purchase_id,
        purchase_count=watermark.purchase_count,
        user_count=watermark.user_count,
        summary={
            "users_changed": written.users_changed,
            "rank_history_rows": written.rank_history_rows,
            "snapshot_rows": written.snapshot_rows,
            "quarantined_user_ids": list(result.quarantined_user_ids),
            "quarantined_purchase_ids": list(result.quarantined_purchase_ids),
        },
    )
    return RunOutcome(run_id, "succeeded", period, as_of, result, written, watermark, list(result.problems))
