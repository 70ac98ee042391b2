"""Pure derivations for explaining one user: where it sits in the tree, which requirements of
every rank it meets, why it holds its rank, and its place in the pioneer order.

Nothing here computes a rule again: the numbers come from :func:`transforms.recompute.user_state`
and :func:`transforms.pioneers.pioneers`; this module only selects parts of the tree and lays
the computed values side by side with the plan's thresholds.
"""

from __future__ import annotations

import polars as pl

from transforms.plan import Plan
from transforms.tree import NODE, Tree
from transforms.volumes import qualifying_volume_column


def ancestors_at(tree: Tree, nodes: pl.Series, distances: pl.Series) -> pl.Series:
    """For each ``nodes[i]``, its ancestor ``distances[i]`` levels up (the root stays the root):
    binary lifting over the tree's jump tables, one gather per bit for all rows at once."""
    position = nodes.cast(NODE)
    distance = distances.cast(pl.Int64)
    for k, jump in enumerate(tree.ancestors):
        take = (distance // (1 << k)) % 2 == 1
        if not take.any():
            continue
        position = pl.select(pl.when(take).then(jump.gather(position)).otherwise(position)).to_series()
    return position.alias("ancestor")


def node_of(tree: Tree, user_id: int) -> int | None:
    """The node number of ``user_id``, or None when the user is not in the tree."""
    found = tree.nodes.filter(pl.col("user_id") == user_id)["node"]
    return int(found[0]) if found.len() else None


def subtree(tree: Tree, node: int) -> pl.DataFrame:
    """The nodes of ``node``'s subtree, itself included, with ``relative_depth`` (0 for the node):
    every node whose ancestor as many levels up as it is deeper than ``node`` is ``node``."""
    top_depth = int(tree.nodes["depth"][node])
    deeper = tree.nodes.filter(pl.col("depth") >= top_depth).with_columns(relative_depth=pl.col("depth") - top_depth)
    above = ancestors_at(tree, deeper["node"], deeper["relative_depth"])
    return deeper.filter(above == node)


def sponsor_chain(tree: Tree, node: int) -> pl.DataFrame:
    """The sponsors of ``node`` up to the root, nearest first: ``levels_up`` (1: the sponsor),
    ``node``, ``user_id``, ``telegram_id``, ``depth``. Empty for the root."""
    depth = int(tree.nodes["depth"][node])
    levels = pl.Series(range(1, depth + 1), dtype=pl.Int64)
    found = ancestors_at(tree, pl.repeat(node, depth, eager=True), levels)
    return pl.DataFrame({"levels_up": levels, "node": found}).join(
        tree.nodes.select("node", "user_id", "telegram_id", "depth"), on="node", how="left", maintain_order="left"
    )


def rank_requirements(user: dict, plan: Plan) -> list[dict]:
    """For every rank of the plan, each of its three requirements against the user's computed
    values (``user``: one row of ``user_state``): required, has, met, and how much is missing."""
    rows = []
    for rank in plan.ranks:
        checks = [
            ("personal_volume_cents", rank.personal_volume_cents, user["personal_volume_total_cents"]),
            ("qualifying_volume_cents", rank.team_volume_cents, user[qualifying_volume_column(rank.name)]),
            ("active_partners", rank.active_partners, user["active_partners"]),
        ]
        requirements = [
            {"requirement": name, "required": required, "has": has, "met": has >= required, "missing": max(0, required - has)}
            for name, required, has in checks
        ]
        rows.append(
            {
                "rank": rank.name,
                "order": rank.order,
                "leg_cap_cents": plan.leg_cap_cents(rank),
                "requirements": requirements,
                "qualifies": all(r["met"] for r in requirements),
            }
        )
    return rows


def held_rank_reason(user: dict, plan: Plan, assigned_rank: str | None) -> dict:
    """Why the user holds its rank after this run: the stored (previous) rank, the highest rank
    it qualifies for, and which of the plan's rules decided (never down, promotion only while
    active, the root takes no rank checks, a founder's assigned rank)."""
    previous, qualified, held = user["previous_rank_order"], user["qualified_rank_order"], user["rank_order"]
    if user["is_root"] and plan.root_takes_no_rank_checks:
        rule = "the root takes no rank checks: it keeps the rank it holds"
    elif held > previous:
        rule = f"promoted: qualifies for {user['qualified_rank']} and may be promoted (active: {user['is_active']})"
    elif qualified > previous:
        rule = f"qualifies for {user['qualified_rank']} but is not active this month: promotion only while active"
    elif qualified < previous:
        rule = f"qualifies only for {user['qualified_rank']}; ranks never go down, so it keeps {user['previous_rank']}"
    else:
        rule = f"qualifies for {user['qualified_rank']}, the rank it already holds"
    if assigned_rank is not None and assigned_rank == user["previous_rank"]:
        rule += f"; {assigned_rank} was assigned by hand (mlmStatus.assignedRank) and is kept like any rank held"
    return {
        "previous_rank": user["previous_rank"],
        "qualified_rank": user["qualified_rank"],
        "rank": user["rank"],
        "rule": rule,
    }


def blocking_requirements(requirements: list[dict], user: dict, plan: Plan) -> dict | None:
    """What stands between the user and the rank above the one it holds: the requirements not
    met (with how much is missing), or activity when every requirement is met. None at the top."""
    next_order = user["rank_order"] + 1
    if next_order >= len(plan.ranks):
        return None
    target = requirements[next_order]
    unmet = [r for r in target["requirements"] if not r["met"]]
    inactive = plan.promote_only_active and not user["is_active"]
    return {"rank": target["rank"], "unmet": unmet, "needs_activity": inactive and not unmet}


def pioneer_order(candidates: pl.DataFrame, granted: pl.DataFrame, user_id: int, complete_until: tuple[int, int] | None = None) -> dict:
    """The user's place among the pioneer candidates: its qualifying purchase (or none), how many
    candidates not yet granted came before it, how many grants were held before them, and the
    latest new grant.

    ``candidates``: one row per user in the tree (``user_id``, ``purchase_id``,
    ``purchased_at``), every one of them, or (``complete_until``: a (time in µs, purchaseID))
    only those up to that purchase and the user's own; a user whose purchase comes after it has
    no known count before it (``candidates_before`` None). ``granted``: what
    :func:`transforms.pioneers.pioneers` returned."""
    own = candidates.filter(pl.col("user_id") == user_id)
    if own.is_empty():
        return {"candidate": None}
    purchase_id, purchased_at = own["purchase_id"][0], own["purchased_at"][0]
    waiting = candidates.join(granted.filter(~pl.col("is_new_pioneer")).select("user_id"), on="user_id", how="anti")
    before = waiting.filter(
        (pl.col("purchased_at") < purchased_at) | ((pl.col("purchased_at") == purchased_at) & (pl.col("purchase_id") < purchase_id))
    ).height
    at_us = int(own.select(pl.col("purchased_at").dt.epoch("us")).item())
    counted = complete_until is None or (at_us, int(purchase_id)) <= complete_until
    new = granted.filter(pl.col("is_new_pioneer")).sort("pioneer_granted_at", "pioneer_purchase_id").tail(1)
    last_new = None if new.is_empty() else {"purchase_id": int(new["pioneer_purchase_id"][0]), "purchased_at": new["pioneer_granted_at"][0]}
    return {
        "candidate": {"purchase_id": int(purchase_id), "purchased_at": purchased_at.isoformat()},
        "candidates_before": before if counted else None,
        "last_new_grant": last_new,
        "stored_grants": int(granted.filter(~pl.col("is_new_pioneer")).height),
    }
