"""Volumes: personal (per user), team (over the downline) and qualifying (legs capped per rank).

All money is integer cents. A period is a calendar month keyed ``YYYY-MM``; the purchases given
here are already those before the cut-off.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from transforms.plan import Plan
from transforms.tree import Tree

PERSONAL_COLUMNS = ["user_id", "personal_volume_total_cents", "monthly_pv_cents", "last_active_month"]


def month_start(period: str) -> date:
    """The first day of a ``YYYY-MM`` period."""
    return date(int(period[:4]), int(period[5:7]), 1)


def personal_volumes(monthly_volumes: pl.LazyFrame, period: str, min_monthly_pv_cents: int) -> pl.LazyFrame:
    """Each buyer's lifetime total, this period's PV, and the last month it was active; one row
    per user with purchases (``monthly_volumes``: one row per user per month, ``month`` being the
    month's first day, ``volume_cents``)."""
    first_day = month_start(period)
    in_period = pl.col("month") == first_day
    reached_minimum = (pl.col("volume_cents") >= min_monthly_pv_cents) & (pl.col("month") <= first_day)
    return (
        # Every purchase before the cut-off counts toward the lifetime total (rule 1), whatever
        # month it fell in; the extract has already applied the cut-off.
        monthly_volumes.group_by("user_id")
        .agg(
            personal_volume_total_cents=pl.col("volume_cents").sum(),
            monthly_pv_cents=pl.when(in_period).then(pl.col("volume_cents")).otherwise(0).sum(),
            # Activity is monthly: the latest month whose PV reached the minimum.
            last_active_month=pl.when(reached_minimum).then(pl.col("month")).max(),
        )
        .with_columns(pl.col("last_active_month").dt.strftime("%Y-%m"))
    )


def branches(tree: Tree, personal_volume_total_cents: pl.Series, full_volume_cents: pl.Series) -> pl.DataFrame:
    """One row per direct referral (every user but the root): its sponsor's ``parent_node`` and the
    branch volume it brings, ``branch_cents`` = its own total plus its full volume."""
    return (
        tree.nodes.select("parent_node", "user_id", "telegram_id", "is_root")
        .with_columns(branch_cents=personal_volume_total_cents + full_volume_cents)
        .filter(~pl.col("is_root"))
        .select(
            "parent_node",
            pl.col("user_id").alias("referral_user_id"),
            pl.col("telegram_id").alias("referral_telegram_id"),
            "branch_cents",
        )
    )


def qualifying_volume_column(rank_name: str) -> str:
    return f"qualifying_{rank_name}_cents"


def qualifying_volumes(tree: Tree, user_branches: pl.DataFrame, plan: Plan) -> pl.DataFrame:
    """Per user and rank, the sum of its branches each capped at the rank's leg cap (no leg supplies
    more than the plan's ratio of that rank's requirement). Node-aligned, one column per rank."""
    per_rank = [
        pl.min_horizontal(pl.col("branch_cents"), pl.lit(plan.leg_cap_cents(rank))).sum().alias(
            qualifying_volume_column(rank.name)
        )
        for rank in plan.ranks
    ]
    by_sponsor = user_branches.group_by("parent_node").agg(per_rank)
    return (
        tree.nodes.select(pl.col("node").alias("parent_node"))
        .join(by_sponsor, on="parent_node", how="left", maintain_order="left")
        .select(pl.col(qualifying_volume_column(r.name)).fill_null(0).cast(pl.Int64) for r in plan.ranks)
    )
