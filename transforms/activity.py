"""Activity: who is active this month, and how many active partners each user has."""

from __future__ import annotations

import polars as pl

from transforms.plan import Plan
from transforms.tree import Tree, child_totals


def is_active(monthly_pv_cents: pl.Expr, min_monthly_pv_cents: int) -> pl.Expr:
    """Whether a user's PV for the period reached the plan's minimum."""
    return monthly_pv_cents >= min_monthly_pv_cents


def active_partners(tree: Tree, is_active_flag: pl.Series, active_in_downline: pl.Series, plan: Plan) -> pl.Series:
    """Per user, the active users in its downline within the depth limit (``active_in_downline``,
    node-aligned, from the downline pass) or, under the ``direct`` scope, among its direct
    referrals. The root has none by rule. Node-aligned."""
    if plan.active_partners_scope == "direct":
        counted = child_totals(tree, pl.DataFrame({"active_partners": is_active_flag.cast(pl.Int64)}))
    else:
        counted = pl.DataFrame({"active_partners": active_in_downline})
    return (
        counted.with_columns(tree.nodes["is_root"])
        .select(pl.when(pl.col("is_root")).then(0).otherwise(pl.col("active_partners")).alias("active_partners"))
        .to_series()
        .cast(pl.Int32)
    )


def direct_referrals(tree: Tree) -> pl.Series:
    """Per user, how many users it sponsors directly. Node-aligned."""
    ones = pl.DataFrame({"direct_referrals": pl.repeat(1, tree.size, dtype=pl.Int64, eager=True)})
    return child_totals(tree, ones)["direct_referrals"].cast(pl.Int32)
