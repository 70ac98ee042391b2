"""Ranks: the rank a user qualifies for, and the rank it holds (ranks never go down).

Ranks are compared by their order in the plan (``rank_order``, 0 = entry rank), never by name.
"""

from __future__ import annotations

import polars as pl

from transforms.plan import Plan, Rank
from transforms.volumes import qualifying_volume_column


def rank_order_of(name: pl.Expr, plan: Plan) -> pl.Expr:
    """A rank name's order in the plan; null names are the entry rank, unknown names null."""
    return name.fill_null(plan.ranks[0].name).replace_strict(
        plan.rank_names, list(range(len(plan.ranks))), default=None, return_dtype=pl.Int8
    )


def rank_name_of(order: pl.Expr, plan: Plan) -> pl.Expr:
    return order.replace_strict(list(range(len(plan.ranks))), plan.rank_names, return_dtype=pl.String)


def meets_requirements(rank: Rank) -> pl.Expr:
    """Whether a user satisfies all three of ``rank``'s requirements (personal, capped team, partners)."""
    return (
        (pl.col("personal_volume_total_cents") >= rank.personal_volume_cents)
        & (pl.col(qualifying_volume_column(rank.name)) >= rank.team_volume_cents)
        & (pl.col("active_partners") >= rank.active_partners)
    )


def qualified_rank_order(plan: Plan) -> pl.Expr:
    """The highest rank whose requirements all hold (the entry rank when none does)."""
    return pl.max_horizontal(
        pl.lit(0, pl.Int8),
        *(pl.when(meets_requirements(rank)).then(pl.lit(rank.order, pl.Int8)) for rank in plan.ranks[1:]),
    )


def may_be_promoted(plan: Plan) -> pl.Expr:
    """Whether a user's rank may rise this run: active (if the plan says so) and not the root."""
    allowed = pl.lit(True)
    if plan.promote_only_active:
        allowed = allowed & pl.col("is_active")
    if plan.root_takes_no_rank_checks:
        allowed = allowed & ~pl.col("is_root")
    return allowed


def held_rank_order(plan: Plan) -> pl.Expr:
    """The rank held after this run: the previous rank, raised to the qualified one when allowed."""
    previous = pl.col("previous_rank_order")
    raised = pl.max_horizontal(previous, pl.col("qualified_rank_order"))
    return pl.when(may_be_promoted(plan)).then(raised).otherwise(previous).cast(pl.Int8)


def next_rank_order(plan: Plan) -> pl.Expr:
    """The rank a user works toward: the one above its rank; the top rank stays the top rank."""
    return pl.min_horizontal(pl.col("rank_order") + 1, pl.lit(len(plan.ranks) - 1)).cast(pl.Int8)


def per_rank(order: pl.Expr, values: list[int | pl.Expr]) -> pl.Expr:
    """The value for the rank ``order`` names, out of one value per rank in plan order."""
    chosen = pl.lit(None, pl.Int64)
    for position, value in reversed(list(enumerate(values))):
        chosen = pl.when(order == position).then(value).otherwise(chosen)
    return chosen


def next_rank_targets(plan: Plan) -> list[pl.Expr]:
    """Toward the next rank: its requirement, its leg cap, the capped volume counted for it, the gap."""
    order = pl.col("next_rank_order")
    required = per_rank(order, [rank.team_volume_cents for rank in plan.ranks])
    cap = per_rank(order, [plan.leg_cap_cents(rank) for rank in plan.ranks])
    qualifying = per_rank(order, [pl.col(qualifying_volume_column(rank.name)) for rank in plan.ranks])
    return [
        required.alias("required_for_next_rank_cents"),
        cap.alias("cap_limit_cents"),
        qualifying.alias("qualifying_volume_cents"),
        pl.max_horizontal(required - qualifying, pl.lit(0)).alias("gap_cents"),
    ]


def carried_ranks(months: pl.DataFrame, initial: pl.DataFrame, plan: Plan) -> pl.DataFrame:
    """The rank each user holds at the end of each month when ranks never go down: the running
    maximum, month by month, of the ranks it could be promoted to, on top of ``initial``.

    ``months``: one row per user per month (``period``, ``user_id``, ``qualified_rank_order``,
    ``is_active``, ``is_root``), computed independently (so months can run concurrently);
    ``initial``: ``user_id``, ``previous_rank`` before the first month. One row per user per month
    out, in no particular order: ``period``, ``user_id``, ``rank_order``, ``rank``.
    """
    start = initial.select("user_id", rank_order_of(pl.col("previous_rank"), plan).alias("initial_order"))
    promotable = pl.when(may_be_promoted(plan)).then(pl.col("qualified_rank_order")).otherwise(0)
    return (
        months.join(start, on="user_id", how="left")
        .with_columns(
            rank_order=pl.max_horizontal(
                pl.col("initial_order").fill_null(0), promotable.cum_max().over("user_id", order_by="period")
            ).cast(pl.Int8)
        )
        .select("period", "user_id", "rank_order", rank_name_of(pl.col("rank_order"), plan).alias("rank"))
    )
