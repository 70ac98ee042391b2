"""Benchmark: the compute stage alone, on demo data already in memory.

    python -m bench.compute --users 100000 1000000 --per-user 10 --months 12

For each size: generate the demo platform, shape it as the extract delivers it (purchases per
user and month, pioneer candidates), save it, then in a fresh process load it and time
``transforms.recompute.recompute`` and its peak memory (the process's peak RSS, inputs included).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import psutil

from bench.common import PeakMemory, sized_parser

AS_OF = datetime(2025, 11, 1, tzinfo=timezone.utc)
PERIOD = "2025-10"


def extract_shaped(users: pl.DataFrame, purchases: pl.DataFrame, pioneer_min_cents: int) -> dict[str, pl.DataFrame]:
    """The demo platform as db/extract delivers it (the same aggregation, done in Polars here)."""
    cut_off = AS_OF.replace(tzinfo=None)
    valid = purchases.with_columns(
        price_cents=(pl.col("packPrice").str.replace(".", "", literal=True).cast(pl.Int64)),
        created=pl.col("createdAt").cast(pl.Datetime("us")),
    ).filter(pl.col("created") < cut_off)
    monthly = valid.group_by(
        pl.col("userID").cast(pl.Int64).alias("user_id"), pl.col("created").dt.truncate("1mo").dt.date().alias("month")
    ).agg(pl.col("price_cents").sum().alias("volume_cents"))
    candidates = (
        valid.filter(pl.col("price_cents") >= pioneer_min_cents)
        .sort("userID", "created", "purchaseID")
        .group_by("userID", maintain_order=True)
        .first()
        .select(
            pl.col("userID").cast(pl.Int64).alias("user_id"),
            pl.col("purchaseID").cast(pl.Int64).alias("purchase_id"),
            pl.col("created").alias("purchased_at"),
        )
    )
    status = pl.col("mlmStatus").str.json_path_match
    user_inputs = users.select(
        pl.col("userID").cast(pl.Int64).alias("user_id"),
        pl.col("telegramID").cast(pl.Int64).alias("telegram_id"),
        pl.col("upline").cast(pl.Int64).alias("upline_telegram_id"),
        pl.col("rank").alias("previous_rank"),
        (status("$.hasPioneerBonus") == "true").alias("has_pioneer_bonus"),
        status("$.pioneerGrantedAt").alias("pioneer_granted_at"),
        status("$.pioneerPurchaseId").cast(pl.Int64, strict=False).alias("pioneer_purchase_id"),
        status("$.pioneerNumber").cast(pl.Int64, strict=False).alias("pioneer_number"),
        pl.lit(None, pl.String).alias("bad_pioneer_keys"),
        *(
            pl.when(pl.col(c).is_not_null()).then(pl.lit("object")).alias(name)
            for c, name in (("mlmStatus", "mlm_status_type"), ("mlmVolumes", "mlm_volumes_type"), ("totalVolume", "total_volume_type"))
        ),
        (pl.col("firstname") if "firstname" in users.columns else pl.lit(None, pl.String)).alias("first_name"),
        pl.lit(None, pl.Int64).alias("stored_fingerprint"),
    )
    return {"users": user_inputs, "monthly_volumes": monthly, "pioneer_candidates": candidates}


def measure(folder: Path) -> dict:
    """Load the saved inputs and time the recompute (runs in a fresh process); memory is the
    process's resident size: inputs loaded, then its peak while computing."""
    from flows.config import load_plan
    from transforms.documents import Provenance
    from transforms.recompute import PURCHASE_PROBLEM_COLUMNS, Inputs, recompute

    plan = load_plan()
    inputs = Inputs(
        users=pl.read_parquet(folder / "users.parquet"),
        monthly_volumes=pl.read_parquet(folder / "monthly_volumes.parquet"),
        pioneer_candidates=pl.read_parquet(folder / "pioneer_candidates.parquet"),
        purchase_problems=pl.DataFrame(schema=PURCHASE_PROBLEM_COLUMNS),
    )
    rss_before = psutil.Process().memory_info().rss / 2**20
    with PeakMemory() as memory:
        started = time.perf_counter()
        result = recompute(
            inputs, plan, period=PERIOD, root_telegram_id=None,
            provenance=Provenance(run_id=1, plan_version=plan.version, as_of=AS_OF, calculated_at=AS_OF),
        )  # fmt: skip
        seconds = time.perf_counter() - started
    return {
        "users": result.state.height,
        "user_months": inputs.monthly_volumes.height,
        "seconds": round(seconds, 2),
        "users_per_s": round(result.state.height / seconds),
        "rss_inputs_mb": round(rss_before),
        "peak_rss_mb": round(memory.peak),
    }


def main() -> None:
    parser = sized_parser(__doc__.splitlines()[0])
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return

    from db.demo import demo_frames
    from flows.config import load_plan

    rows = []
    for size in args.users:
        with tempfile.TemporaryDirectory(prefix="mlmbench") as tmp:
            folder = Path(tmp)
            data = demo_frames(users=size, months=args.months, seed=args.seed, purchases_per_user=args.per_user, end_month=PERIOD)
            for name, frame in extract_shaped(data.users, data.purchases, load_plan().pioneer_min_purchase_cents).items():
                frame.write_parquet(folder / f"{name}.parquet")
            purchases = data.purchases.height
            del data
            out = subprocess.run([sys.executable, "-m", "bench.compute", "--measure", str(folder)], check=True, capture_output=True, text=True)
            rows.append({"purchases": purchases, **json.loads(out.stdout.strip().splitlines()[-1])})
    print(f"{'users':>10} {'purchases':>11} {'user-months':>12} {'compute s':>10} {'users/s':>10} {'inputs MB':>10} {'peak MB':>8}")
    for r in rows:
        print(
            f"{r['users']:>10,} {r['purchases']:>11,} {r['user_months']:>12,} {r['seconds']:>10} {r['users_per_s']:>10,} {r['rss_inputs_mb']:>10,} {r['peak_rss_mb']:>8,}"
        )


if __name__ == "__main__":
    main()
