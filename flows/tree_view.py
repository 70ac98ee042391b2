"""``mlm-recompute tree USER_ID --depth N``: the user's downline, indented, with each member's
rank, activity, PV and full volume as the nightly run computes them; largest branches first.

Read-only, from the same part of the tree as ``explain`` (db/subtree.py): the whole subtree is
read even when fewer levels are shown, since a member's full volume is its whole downline's.
"""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl

from db.audit import usd
from db.connection import Database
from flows.explain import _downline_rows, computed_part
from transforms.plan import Plan

SIBLING_DIGITS = 7  # a member's place among its sponsor's referrals, zero-padded so paths sort as text
MAX_SHOWN = 2000  # members listed at most (the count of members within the depth is always given)


def downline(state_rows: pl.DataFrame, depth: int) -> pl.DataFrame:
    """The members at most ``depth`` levels below the top (``relative_depth`` 0), in tree order:
    each member followed by its own downline, a sponsor's referrals by branch volume (own total
    plus full volume), largest first, ties by userID. One row per member, ``path`` its sort key."""
    rows = state_rows.filter(pl.col("relative_depth") <= depth).with_columns(
        branch_cents=pl.col("personal_volume_total_cents") + pl.col("full_volume_cents")
    )
    # Sorted by branch then userID, a member's place is its position among its sponsor's rows.
    rows = rows.sort(["branch_cents", "user_id"], descending=[True, False]).with_columns(
        place=pl.int_range(pl.len(), dtype=pl.Int64).over("parent_node")
    )
    top = rows.filter(pl.col("relative_depth") == 0).with_columns(path=pl.lit(""))
    placed = [top]
    for level in range(1, depth + 1):  # one join per level shown, never per member
        parents = placed[-1].select(pl.col("node").alias("parent_node"), pl.col("path").alias("parent_path"))
        children = rows.filter(pl.col("relative_depth") == level).join(parents, on="parent_node", how="inner")
        if children.is_empty():
            break
        placed.append(
            children.with_columns(path=pl.col("parent_path") + pl.col("place").cast(pl.String).str.zfill(SIBLING_DIGITS)).drop("parent_path")
        )
    return pl.concat(placed, how="diagonal").sort("path")


def tree_report(db: Database, plan: Plan, user_id: int, depth: int, *, as_of: datetime, period: str, root_telegram_id: int | None) -> dict:
    """The downline of ``user_id`` to ``depth`` levels (JSON-ready)."""
    if depth < 0:
        raise ValueError(f"--depth must be 0 or more, got {depth}")
    part = computed_part(db, plan, user_id, as_of=as_of, period=period, root_telegram_id=root_telegram_id)
    head = {"user_id": user_id, "as_of": as_of.astimezone(timezone.utc).isoformat(), "period": period, "plan_version": plan.version, "depth": depth}
    if isinstance(part, dict):
        return head | part
    members = downline(_downline_rows(part), depth)
    shown = members.head(MAX_SHOWN)
    return head | {
        "in_tree": True,
        "members_within_depth": members.height,
        "members_shown": shown.height,
        "members": [
            {
                "user_id": r["user_id"],
                "level": r["relative_depth"],
                "rank": r["rank"],
                "is_active": r["is_active"],
                "pv": usd(r["monthly_pv_cents"]),
                "full_volume": usd(r["full_volume_cents"]),
                "branch_volume": usd(r["branch_cents"]),
                "direct_referrals": r["direct_referrals"],
            }
            for r in shown.iter_rows(named=True)
        ],
    }


def tree_lines(report: dict) -> list[str]:
    """The downline for a terminal: one indented line per member."""
    head = f"downline of userID {report['user_id']} to depth {report['depth']} as of {report['as_of']} (plan {report['plan_version']})"
    if not report["in_tree"]:
        return [head, "  not in the tree: " + "; ".join(p["kind"] for p in report["problems"])]
    lines = [head]
    for m in report["members"]:
        status = "active" if m["is_active"] else "inactive"
        lines.append(f"{'  ' * (m['level'] + 1)}{m['user_id']} {m['rank']} {status} PV {m['pv']} full volume {m['full_volume']}")
    if report["members_shown"] < report["members_within_depth"]:
        lines.append(f"  ... {report['members_within_depth'] - report['members_shown']:,} more members not listed (a smaller --depth lists fewer)")
    return lines
