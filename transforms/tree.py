"""The referral tree and the depth-limited sums over it, vectorized.

Users link to their sponsor by telegramID (``upline``). Walking the tree user by user is what the
platform did and what made it slow; here every walk is a handful of whole-array steps:

* depth and reachability by pointer jumping (``log2(n)`` gathers over all users at once);
* sums over each user's descendants level by level from the deepest level up (one grouped
  scatter per level, never per user);
* the depth limit by subtraction: what lies more than ``d`` levels below ``u`` is exactly the
  subtrees rooted ``d + 1`` levels below ``u``, found by binary lifting over the jump tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from transforms.problems import Problem, problem

NODE = pl.UInt32


@dataclass(frozen=True)
class Tree:
    """The referral tree of every user reachable from the root.

    ``nodes`` has one row per reachable user, its row position being its ``node`` number:
    ``node``, ``user_id``, ``telegram_id``, ``parent_node`` (the root points at itself),
    ``depth`` (root 0) and ``is_root``. ``problems`` lists the users left out and why.
    """

    nodes: pl.DataFrame
    root_node: int
    ancestors: tuple[pl.Series, ...]  # ancestors[k][node]: the ancestor 2**k levels up (root stays root)
    problems: tuple[Problem, ...]

    @property
    def size(self) -> int:
        return self.nodes.height

    @property
    def max_depth(self) -> int:
        return int(self.nodes["depth"].max() or 0)


def referral_tree(users: pl.DataFrame, root_telegram_id: int | None) -> Tree:
    """The tree over ``users`` (``user_id``, ``telegram_id``, ``upline_telegram_id``; one row per user).

    The root is the user whose telegramID is ``root_telegram_id``, or, when that is None, the one
    user who sponsors itself. Users who cannot reach the root are left out and reported: orphans
    (upline matches nobody), cycles, and everyone hanging below either.
    """
    linked = _linked_users(users, root_telegram_id)
    shared_root = _shared_root_telegram_id(linked, root_telegram_id)
    if shared_root is not None:
        return _refused_tree(linked, shared_root)
    root_rows = linked.filter(pl.col("is_root"))
    if root_rows.height != 1:
        return _rootless_tree(users, linked, root_telegram_id)
    # A configured root that has a sponsor of its own (another user), while another user
    # sponsors itself: the setting disagrees with the platform. A self-sponsor beside a root
    # that sponsors itself, or has no sponsor at all, is a cycle.
    root_has_sponsor = (root_rows["upline_telegram_id"] != root_rows["telegram_id"]).fill_null(False).all()
    disagreeing = linked.filter((pl.col("upline_telegram_id") == pl.col("telegram_id")) & ~pl.col("is_root"))
    if disagreeing.height and root_has_sponsor:
        # Not a cycle: the setting names another root than the platform's own self-sponsor.
        configured = int(root_rows["user_id"][0])
        found = problem(
            "root_setting",
            disagreeing["user_id"],
            f"MLM_ROOT_TELEGRAM_ID {root_telegram_id} is userID {configured}, whose upline is not itself; "
            "set it to the self-sponsored user's telegramID, or unset it",
        )
        return _refused_tree(linked, found)

    parent = linked["parent_node"]
    jumps, reach_root = _pointer_jumps(parent, int(root_rows["node"][0]))
    depth = _depth(jumps, reach_root)
    linked = linked.with_columns(depth=depth, reaches_root=reach_root)
    problems = _unreachable_problems(linked, jumps[-1])
    return _reachable_tree(linked, jumps, problems)


def _linked_users(users: pl.DataFrame, root_telegram_id: int | None) -> pl.DataFrame:
    """One row per user with its row position ``node`` and its sponsor's ``parent_node`` (null if
    none). ``is_shared``: the user's telegramID is another user's too (the platform lacks the
    unique constraint); such a user points at itself, like an orphan, so that it and everyone
    below it (whose sponsor is ambiguous) stay out of the tree."""
    ordered = (
        users.select("user_id", "telegram_id", "upline_telegram_id")
        .sort("user_id")
        .with_row_index("node")
        .with_columns(is_shared=pl.col("telegram_id").is_duplicated())
    )
    if root_telegram_id is None:
        is_root = pl.col("upline_telegram_id") == pl.col("telegram_id")
    else:
        is_root = pl.col("telegram_id") == root_telegram_id
    # One sponsor per telegramID (the lowest userID of a shared one): the join must not repeat
    # a user once per sponsor found; the shared users' downlines are left out below anyway.
    sponsors = ordered.unique("telegram_id", keep="first", maintain_order=True).select(
        pl.col("telegram_id").alias("upline_telegram_id"), pl.col("node").alias("parent_node")
    )
    return (
        ordered.with_columns(is_root=is_root.fill_null(False))
        .join(sponsors, on="upline_telegram_id", how="left", maintain_order="left")
        .with_columns(
            is_orphan=pl.col("parent_node").is_null() & ~pl.col("is_root") & ~pl.col("is_shared"),
            # The root is its own parent so that jumping past the top stays at the top.
            parent_node=pl.when(pl.col("is_root") | pl.col("is_shared")).then(pl.col("node")).otherwise(pl.col("parent_node")),
        )
        .with_columns(
            # Orphans point at themselves: they become fixed points that are not the root.
            parent_node=pl.col("parent_node").fill_null(pl.col("node")).cast(NODE),
            node=pl.col("node").cast(NODE),
        )
    )


def _shared_root_telegram_id(linked: pl.DataFrame, root_telegram_id: int | None) -> Problem | None:
    """The refusal when the root's telegramID (the configured one, or a self-sponsor's) is shared:
    which user is the root, and whose sponsor it is, cannot be told."""
    if root_telegram_id is None:
        root_ids = linked.filter(pl.col("upline_telegram_id") == pl.col("telegram_id"))["telegram_id"]
    else:
        root_ids = pl.Series([root_telegram_id], dtype=pl.Int64)
    sharing = linked.filter(pl.col("is_shared") & pl.col("telegram_id").is_in(root_ids.implode()))
    if sharing.is_empty():
        return None
    return problem(
        "shared_telegram_id",
        sharing["user_id"],
        f"telegramID {_telegram_ids(sharing)}, the root's: nothing can be computed until only one user holds it",
    )


def _telegram_ids(rows: pl.DataFrame, limit: int = 20) -> str:
    """The distinct telegramIDs of ``rows``, for a problem's detail."""
    shared = rows["telegram_id"].unique().sort()
    more = f" and {shared.len() - limit} more" if shared.len() > limit else ""
    return ", ".join(str(t) for t in shared.head(limit)) + more


def _rootless_tree(users: pl.DataFrame, linked: pl.DataFrame, root_telegram_id: int | None) -> Tree:
    roots = linked.filter(pl.col("is_root"))["user_id"]
    if roots.len() > 1:
        found = problem("several_roots", roots, "set MLM_ROOT_TELEGRAM_ID to the platform's default referrer")
    else:
        wanted = f"telegramID {root_telegram_id}" if root_telegram_id is not None else "a self-sponsored user"
        found = problem("no_root", [], f"looked for {wanted} among {users.height} users")
    return _refused_tree(linked, found)


def _refused_tree(linked: pl.DataFrame, found: Problem) -> Tree:
    """A tree of no users that says why none could be computed."""
    empty = linked.head(0).select("node", "user_id", "telegram_id", "parent_node", "is_root").with_columns(
        depth=pl.lit(0, pl.Int32)
    )
    return Tree(nodes=empty, root_node=0, ancestors=(), problems=(found,))


def _pointer_jumps(parent: pl.Series, root: int) -> tuple[list[pl.Series], pl.Series]:
    """Jump tables ``jumps[k]`` = ancestor ``2**k`` levels up, and whether each node reaches the root.

    Doubling stops once a jump changes nothing (every node sits on the root, an orphan or a node
    of a cycle whose length divides the jump: all periodic, so every tail has been walked), and in
    any case after ``ceil(log2(n)) + 1`` doublings, when every jump spans more levels than there
    are users. Either way a node that reaches the root has jumped onto it, and any other node has
    landed on its cycle or orphan.
    """
    jumps = [parent]
    for _ in range(max(1, math.ceil(math.log2(parent.len() + 1)) + 1)):
        jumps.append(jumps[-1].gather(jumps[-1]))
        if jumps[-1].equals(jumps[-2]):
            break
    return jumps, (jumps[-1] == root)


def _depth(jumps: list[pl.Series], reach_root: pl.Series) -> pl.Series:
    """Levels below the root for nodes that reach it (null otherwise), by binary search on the jumps."""
    # Walk down from the largest jump: take a jump whenever it does not overshoot the root,
    # i.e. whenever the node it lands on is not yet the root (the root is its own ancestor).
    position = pl.Series("position", range(jumps[0].len()), dtype=NODE)
    root = jumps[-1]
    depth = pl.Series("depth", [0] * jumps[0].len(), dtype=pl.Int64)
    for k in range(len(jumps) - 1, -1, -1):
        landed = jumps[k].gather(position)
        take = landed != root
        position = pl.select(pl.when(take).then(landed).otherwise(position)).to_series()
        depth = depth + take.cast(pl.Int64) * (1 << k)
    is_root = position == root  # the root itself never moves
    depth = depth + (~is_root).cast(pl.Int64)  # one last step from the root's child onto the root
    return pl.select(pl.when(reach_root).then(depth).cast(pl.Int32)).to_series().alias("depth")


def _unreachable_problems(linked: pl.DataFrame, far_jump: pl.Series) -> list[Problem]:
    """Orphans, cycle members, and the users stranded below them, each with their userIDs."""
    stranded = linked.with_columns(far=far_jump).filter(~pl.col("reaches_root"))
    if stranded.is_empty():
        return []
    # Jumping further than there are users lands every stranded node on its cycle or orphan,
    # and covers every node of each cycle: those landing nodes are the cycle members.
    # Orphans and users of a shared telegramID are fixed points too, never cycle members.
    landing = stranded.select(pl.col("far").unique().alias("node"))
    on_cycle = landing.join(linked.filter(~pl.col("is_orphan") & ~pl.col("is_shared")).select("node", "user_id"), on="node")
    orphans = stranded.filter(pl.col("is_orphan"))
    shared = stranded.filter(pl.col("is_shared"))
    anchors = pl.concat([orphans["user_id"], shared["user_id"], on_cycle["user_id"]])
    below = stranded.filter(~pl.col("user_id").is_in(anchors.implode()))
    orphan_below = below.join(orphans.select(pl.col("node").alias("far")), on="far", how="semi")
    shared_below = below.join(shared.select(pl.col("node").alias("far")), on="far", how="semi")
    cycle_below = below.join(pl.concat([orphan_below, shared_below]).select("user_id"), on="user_id", how="anti")
    found = []
    if shared.height:
        found.append(
            problem("shared_telegram_id", shared["user_id"], f"telegramID {_telegram_ids(shared)}", detached_ids=shared_below["user_id"])
        )
    if orphans.height:
        found.append(problem("orphan", orphans["user_id"], detached_ids=orphan_below["user_id"]))
    if on_cycle.height:
        found.append(problem("cycle", on_cycle["user_id"], detached_ids=cycle_below["user_id"]))
    return found


def _reachable_tree(linked: pl.DataFrame, jumps: list[pl.Series], problems: list[Problem]) -> Tree:
    """Renumber the reachable users 0..m-1 and carry the jump tables over."""
    keep = linked["reaches_root"]
    # Unreachable nodes before the first reachable one would get -1; they are never read, so clip.
    renumber = (keep.cast(pl.Int64).cum_sum() - 1).clip(lower_bound=0).cast(NODE)
    ancestors = tuple(renumber.gather(jump.filter(keep)) for jump in jumps)
    nodes = linked.filter(keep).select(
        pl.int_range(pl.len(), dtype=NODE).alias("node"),
        "user_id",
        "telegram_id",
        pl.Series("parent_node", ancestors[0]),
        "depth",
        "is_root",
    )
    root_node = int(nodes.filter(pl.col("is_root"))["node"][0])
    return Tree(nodes=nodes, root_node=root_node, ancestors=ancestors, problems=tuple(problems))


# --- sums over descendants --------------------------------------------------------------------


def subtree_totals(tree: Tree, values: pl.DataFrame) -> pl.DataFrame:
    """For each node, each column of ``values`` summed over the node and all its descendants.

    ``values`` is node-aligned (row i is node i) with integer columns; one row per node out.
    """
    totals = {name: values[name].cast(pl.Int64) for name in values.columns}
    levels = (
        tree.nodes.filter(pl.col("depth") > 0)
        .select("node", "parent_node", "depth")
        .partition_by("depth", as_dict=True, include_key=False)
    )
    for depth in sorted((key[0] for key in levels), reverse=True):
        level = levels[(depth,)]
        # Every node of this level is complete (its deeper descendants were added already):
        # add it to its parent, all nodes of the level in one grouped scatter.
        moved = (
            level.with_columns(**{name: totals[name].gather(level["node"]) for name in totals})
            .group_by("parent_node")
            .agg(pl.col(name).sum() for name in totals)
        )
        parents = moved["parent_node"]
        for name in totals:
            totals[name] = totals[name].scatter(parents, totals[name].gather(parents) + moved[name])
    return pl.DataFrame(totals)


def ancestor_at(tree: Tree, distance: int) -> pl.Series:
    """For each node, its ancestor exactly ``distance`` levels up (null when it is not that deep)."""
    position = tree.nodes["node"]
    for k in range(distance.bit_length()):
        if distance >> k & 1:
            position = tree.ancestors[k].gather(position)
    deep_enough = tree.nodes["depth"] >= distance
    return pl.select(pl.when(deep_enough).then(position)).to_series().alias("ancestor")


def descendant_totals(
    tree: Tree, values: pl.DataFrame, max_depth: int | None, *, unlimited: tuple[str, ...] = ()
) -> pl.DataFrame:
    """For each node, each column of ``values`` summed over its descendants at most ``max_depth``
    levels below it (all of them when None, and for the ``unlimited`` columns); the node itself is
    never included. One row per node. Every column shares one bottom-up pass over the levels.
    """
    inclusive = subtree_totals(tree, values)
    exclusive = inclusive.select(pl.col(c) - values[c].cast(pl.Int64) for c in values.columns)
    limited = [c for c in values.columns if c not in unlimited]
    if max_depth is None or max_depth >= tree.max_depth or not limited:
        return exclusive
    # Everything more than max_depth below u sits in the subtrees rooted exactly max_depth + 1
    # below u; each such subtree root names u as its ancestor at that distance.
    too_deep = (
        inclusive.with_columns(ancestor_at(tree, max_depth + 1).alias("__ancestor"))
        .drop_nulls("__ancestor")
        .group_by("__ancestor")
        .agg(pl.col(c).sum() for c in limited)
    )
    excess = (
        tree.nodes.select(pl.col("node").alias("__ancestor"))
        .join(too_deep, on="__ancestor", how="left", maintain_order="left")
        .select(pl.col(c).fill_null(0) for c in limited)
    )
    return exclusive.with_columns(pl.col(c) - excess[c] for c in limited)


def child_totals(tree: Tree, values: pl.DataFrame) -> pl.DataFrame:
    """For each node, each column of ``values`` summed over its direct referrals (the root is not
    its own referral). One row per node."""
    by_parent = (
        tree.nodes.select("parent_node", "is_root")
        .with_columns(values.select(pl.col(c).cast(pl.Int64) for c in values.columns))
        .filter(~pl.col("is_root"))
        .group_by("parent_node")
        .agg(pl.col(c).sum() for c in values.columns)
    )
    return (
        tree.nodes.select(pl.col("node").alias("parent_node"))
        .join(by_parent, on="parent_node", how="left", maintain_order="left")
        .select(pl.col(c).fill_null(0) for c in values.columns)
    )
