"""Benchmark: the whole run end to end through this project's write path, on demo data.

    python -m bench.pipeline --users 100000 1000000 --per-user 10 --months 12

For each size: a new database on the configured server (embedded unless MLM_DATABASE_URL is set),
the demo platform loaded (the platform's schema), then a first run (every user written), then 1%
of users given a new purchase and a nightly run. Prints seconds, rows per second and the
client's peak memory per stage (the database server is a separate process and is not
included), the WAL the server wrote and the documents' JSON bytes per user, and the I/O floor of the same size (``bench/io_floor.py``: the extract's queries
COPYed out, the first run's documents COPYed in) with both runs' ratios to it. ``--steps`` also
prints the seconds of each step of each run (``bench/steps.py``).
"""

from __future__ import annotations

import contextlib
import os
import time
from datetime import datetime, timezone
from pathlib import Path

from bench import io_floor
from bench.common import PeakMemory, sized_parser
from bench.steps import steps_line, timed_steps
from db import migrate
from db.connection import scratch_database, server_uri
from db.demo import generate_and_load
from flows.config import load_plan
from flows.pipeline import run_period

AS_OF = datetime(2025, 11, 1, tzinfo=timezone.utc)  # the end of the demo's last month
PERIOD = "2025-10"
STAGES = ("extract", "compute", "write", "verify")


def change_one_percent(db) -> int:
    """Give every hundredth user a new purchase inside the period (before the cut-off)."""
    with db.connect_raw() as connection:
        return connection.execute(
            # one pack of an existing option (the platform's purchases all have one)
            """WITH pack AS (SELECT "optionID", "projectID", "projectName", "packQty", "packPrice" FROM options
                             ORDER BY "packPrice" = 100.00 DESC, "optionID" LIMIT 1)
               INSERT INTO purchases ("purchaseID", "userID", "optionID", "projectID", "projectName", "packQty", "packPrice",
                                      "ownerTelegramID", "createdAt", "updatedAt")
               SELECT (SELECT max("purchaseID") FROM purchases) + row_number() OVER (), u."userID", pack."optionID",
                      pack."projectID", pack."projectName", COALESCE(pack."packQty", 1), COALESCE(pack."packPrice", 100.00),
                      u."telegramID", '2025-10-15 12:00', '2025-10-15 12:00'
               FROM users AS u, pack WHERE u."userID" % 100 = 0"""
        ).rowcount


def wal_position(db) -> str:
    with db.connect_raw() as connection:
        return connection.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]


def wal_bytes_since(db, position: str) -> int:
    """The WAL the server wrote since ``position`` (every database on it: the benchmark's alone)."""
    with db.connect_raw() as connection:
        return int(connection.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", [position]).fetchone()[0])


def timed_run(db, plan, root_telegram_id: int, *, steps: bool = False) -> dict:
    """One run of the period, timed; with ``steps``, each step's seconds too (``bench.steps``)."""
    wal = wal_position(db)
    with PeakMemory() as memory, (timed_steps() if steps else contextlib.nullcontext({})) as seconds:
        started = time.perf_counter()
        outcome = run_period(db, plan, as_of=AS_OF, period=PERIOD, root_telegram_id=root_telegram_id)
        total = time.perf_counter() - started
    return {"outcome": outcome, "total": total, "peak_mb": memory.peak, "wal_mb": wal_bytes_since(db, wal) / 2**20, "steps": seconds}


def main() -> None:
    parser = sized_parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", action="store_true", help="also print the seconds of each step of a run (bench/steps.py)")
    args = parser.parse_args()
    plan = load_plan()
    data_dir = Path(os.environ.get("MLM_DATA_DIR", ".mlm/pgdata"))
    print(
        f"{'users':>10} {'run':>7} {'written':>9} " + " ".join(f"{s + ' s':>10}" for s in STAGES)
        + f" {'total s':>8} {'users/s':>9} {'peak MB':>8} {'WAL MB':>8} {'docs B/user':>11}"
    )
    with server_uri(os.environ.get("MLM_DATABASE_URL"), data_dir, quiet=True) as uri:
        for size in args.users:
            with scratch_database(uri, prefix="mlm_bench") as db:
                migrate.prepare(db.engine)
                data = generate_and_load(db, users=size, months=args.months, seed=args.seed, purchases_per_user=args.per_user, end_month=PERIOD)
                root = int(data.users["telegramID"][0])
                del data
                # The floor's COPY out before any run (no memo yet: what a first extract reads).
                copied_out = io_floor.copy_out_inputs(db, AS_OF, plan.pioneer_min_purchase_cents)
                totals = {}
                for label in ("first", "nightly"):
                    if label == "nightly":
                        change_one_percent(db)
                    r = timed_run(db, plan, root, steps=args.steps)
                    o = r["outcome"]
                    totals[label] = r["total"]
                    stages = " ".join(f"{o.timings.get(s, 0):>10.2f}" for s in STAGES)
                    # The documents the run made a batch at a time, all of them now (outside the run's
                    # peak): their JSON text per user computed, and, after a first run, the floor's COPY in.
                    batches = list(o.recomputed.document_batches())
                    documents = sum(b.select("mlm_status", "mlm_volumes", "total_volume").estimated_size() for b in batches) / max(size, 1)
                    print(
                        f"{size:>10,} {label:>7} {o.users_written:>9,} {stages} {r['total']:>8.1f} {size / r['total']:>9,.0f} {r['peak_mb']:>8,.0f}"
                        f" {r['wal_mb']:>8,.0f} {documents:>11,.0f}",
                        flush=True,
                    )
                    if args.steps:
                        print(f"{'':>10} {label:>7} steps: {steps_line(r['steps'])}", flush=True)
                    if label == "first":
                        # ...and its COPY in of every document the first run computed (rolled back)
                        floor = copied_out.seconds + io_floor.copy_in_documents(db, batches)
                    del batches
                print(
                    f"{size:>10,} I/O floor {floor:.2f} s (out {copied_out.seconds:.2f}, in {floor - copied_out.seconds:.2f}); "
                    f"first / floor {totals['first'] / floor:.2f}, nightly / floor {totals['nightly'] / floor:.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
