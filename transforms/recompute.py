"""The whole plan applied to one period: inputs in, every user's state and documents out.

This is the one place that composes the business concepts (tree, volumes, activity, ranks,
pioneers, documents). It raises :class:`InputRejected` on bad input unless asked to quarantine,
in which case the offending rows are left out and listed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from transforms import activity, ranks, volumes
from transforms import documents as document_making
from transforms.documents import Provenance, documents, user_batches
from transforms.pioneers import PIONEER_COLUMNS, held_number_problems, pioneer_problems, pioneers
from transforms.plan import Plan
from transforms.problems import InputRejected, Problem, problem
from transforms.tree import Tree, descendant_totals, referral_tree

# The inputs' columns, as db/extract delivers them.
USER_INPUT_COLUMNS = {
    "user_id": pl.Int64,
    "telegram_id": pl.Int64,
    "upline_telegram_id": pl.Int64,
    "previous_rank": pl.String,
    "has_pioneer_bonus": pl.Boolean,
    "pioneer_granted_at": pl.String,
    "pioneer_purchase_id": pl.Int64,
    # the stored pioneerNumber: a quarantined pioneer keeps it
    "pioneer_number": pl.Int64,
    # what is wrong with the stored pioneer keys' shapes (one text per user; null: nothing)
    "bad_pioneer_keys": pl.String,
    "mlm_status_type": pl.String,
    "mlm_volumes_type": pl.String,
    "total_volume_type": pl.String,
    # the name the platform shows for the user (``firstname``): each sponsor's branches carry it
    "first_name": pl.String,
    # the fingerprint the last run recorded for the row as the extract read it (same row version,
    # same HASH_VERSION; null: none): a user whose computed fingerprint equals it is not written
    "stored_fingerprint": pl.Int64,
}
# month: the first day of the calendar month (a date compares and groups faster than text)
MONTHLY_VOLUME_COLUMNS = {"user_id": pl.Int64, "month": pl.Date, "volume_cents": pl.Int64}
CANDIDATE_COLUMNS = {"user_id": pl.Int64, "purchase_id": pl.Int64, "purchased_at": pl.Datetime("us")}
PURCHASE_PROBLEM_COLUMNS = {"purchase_id": pl.Int64, "user_id": pl.Int64, "kind": pl.String}
_DOCUMENT_TYPES = {"mlm_status_type": "mlmStatus", "mlm_volumes_type": "mlmVolumes", "total_volume_type": "totalVolume"}

SNAPSHOT_COLUMNS = [
    "user_id",
    "personal_volume_total_cents",
    "monthly_pv_cents",
    "full_volume_cents",
    "qualifying_volume_cents",
    "active_partners",
    "direct_referrals",
    "is_active",
    "last_active_month",
    "qualified_rank",
    "rank",
]


@dataclass(frozen=True)
class Inputs:
    """What the recompute reads, already cut off at ``as_of``.

    ``users``: one row per user (USER_INPUT_COLUMNS); ``monthly_volumes``: one row per buyer per
    month of valid purchases; ``pioneer_candidates``: one row per user, its first single purchase
    at or above the pioneer minimum; ``purchase_problems``: one row per bad purchase.
    """

    users: pl.DataFrame
    monthly_volumes: pl.DataFrame
    pioneer_candidates: pl.DataFrame
    purchase_problems: pl.DataFrame


@dataclass(frozen=True)
class Recomputed:
    """The result for one period.

    ``state``: one row per user written (every computed value, and the ``stored_fingerprint``
    the extract read with the user's row), in node order; ``branches``: one row per direct
    referral, what the documents' branch lists are made of; ``rank_changes``: one row per user
    whose rank rose; ``problems``: what was quarantined (empty unless quarantine was asked for).

    The documents (what the load step merges) are made from ``state`` and ``branches`` when they
    are wanted, a batch of users at a time (``document_batches``), so that the JSON text of
    every user is never held at once; ``documents`` is the whole frame, for small results.
    """

    period: str
    as_of: datetime
    state: pl.DataFrame
    branches: pl.DataFrame
    plan: Plan
    provenance: Provenance
    rank_changes: pl.DataFrame
    problems: tuple[Problem, ...]
    quarantined_user_ids: tuple[int, ...]
    quarantined_purchase_ids: tuple[int, ...]

    def document_batches(self, batch_rows: int | None = None) -> Iterator[pl.DataFrame]:
        """The documents of every user in ``state``, a batch of at most ``batch_rows`` users at a
        time (``DOCUMENT_BATCH_ROWS`` unless given), each with the user's ``stored_fingerprint``;
        one row per user."""
        rows = batch_rows or document_making.DOCUMENT_BATCH_ROWS
        for users, branches in user_batches(self.state, self.branches, rows):
            yield _with_stored_fingerprints(documents(users, branches, self.plan, self.provenance), users)

    @property
    def documents(self) -> pl.DataFrame:
        """The documents of every user in one frame (see ``document_batches``); one row per user."""
        return _with_stored_fingerprints(documents(self.state, self.branches, self.plan, self.provenance), self.state)

    @property
    def snapshots(self) -> pl.DataFrame:
        """The period's snapshot rows: one row per user."""
        return self.state.select(SNAPSHOT_COLUMNS)


def _with_stored_fingerprints(documents: pl.DataFrame, users: pl.DataFrame) -> pl.DataFrame:
    """``documents`` with each user's stored fingerprint, so the write decides in the frame, not at
    the database, which users to send (``db.load.users_to_stage``). ``documents`` are in
    ``users``' order, row for row."""
    return documents.with_columns(users["stored_fingerprint"])


def period_of(instant: datetime) -> str:
    """The calendar month (``YYYY-MM``, UTC) an instant falls in."""
    return f"{instant.year:04d}-{instant.month:02d}"


def input_problems(inputs: Inputs, plan: Plan) -> list[Problem]:
    """Every problem of the inputs that does not need the tree: purchases, documents, ranks, pioneers."""
    found = []
    bad_purchases = inputs.purchase_problems
    for kind in ("unknown_user", "bad_price", "bad_time"):
        ids = bad_purchases.filter(pl.col("kind") == kind)["purchase_id"]
        if ids.len():
            found.append(problem(kind, ids))
    users = inputs.users
    for column, name in _DOCUMENT_TYPES.items():
        bad = users.filter(pl.col(column).is_not_null() & (pl.col(column) != "object"))
        if bad.height:
            kinds = ", ".join(sorted(set(bad[column])))
            found.append(problem("bad_document", bad["user_id"], f"{name} holds JSON {kinds}, not an object"))
    unknown_rank = users.filter(ranks.rank_order_of(pl.col("previous_rank"), plan).is_null())
    if unknown_rank.height:
        names = sorted(set(unknown_rank["previous_rank"]))
        found.append(problem("bad_rank", unknown_rank["user_id"], f"ranks {names} are not in plan {plan.version} ({plan.rank_names})"))
    found.extend(pioneer_problems(users, plan.pioneer_slots))
    return found


def recompute(
    inputs: Inputs,
    plan: Plan,
    *,
    period: str,
    root_telegram_id: int | None,
    provenance: Provenance,
    quarantine: bool = False,
) -> Recomputed:
    """Apply ``plan`` to ``inputs`` for ``period`` as of ``provenance.as_of``."""
    tree = referral_tree(inputs.users, root_telegram_id)
    problems = list(tree.problems) + input_problems(inputs, plan)
    if tree.size == 0 or any(p.kind in ("no_root", "several_roots", "root_setting") for p in problems):
        raise InputRejected(problems)  # nothing can be computed without a root
    if problems and not quarantine:
        raise InputRejected(problems)

    held_out_users = {i for p in problems if p.kind not in _PURCHASE_KINDS for i in (*p.ids, *p.detached_ids)}
    held_out_purchases = {i for p in problems if p.kind in _PURCHASE_KINDS for i in p.ids}

    held_out = pl.Series("user_id", sorted(held_out_users), dtype=pl.Int64)
    try:
        state, branches = user_state(inputs, tree, plan, period, held_out=held_out)
    except InputRejected as unkeepable:  # quarantine cannot hold these out: refuse with everything found
        raise InputRejected(problems + unkeepable.problems) from None
    written = state.filter(~pl.col("user_id").is_in(held_out.implode())).join(
        inputs.users.select("user_id", "stored_fingerprint"), on="user_id", how="left", maintain_order="left"
    )
    return Recomputed(
        period=period,
        as_of=provenance.as_of,
        state=written,
        branches=branches,
        plan=plan,
        provenance=provenance,
        rank_changes=rank_changes(written),
        problems=tuple(problems),
        quarantined_user_ids=tuple(sorted(held_out_users)),
        quarantined_purchase_ids=tuple(sorted(held_out_purchases)),
    )


_PURCHASE_KINDS = {"unknown_user", "bad_price", "bad_time"}


def user_state(
    inputs: Inputs, tree: Tree, plan: Plan, period: str, *, held_out: pl.Series | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every computed value for every user in the tree (one row per user, in node order), and the
    branches (one row per direct referral) they were computed from. ``held_out``: the userIDs
    that will not be written (quarantined); raises InputRejected when a stored pioneer among
    them has a number the others cannot be numbered around."""
    personal = volumes.personal_volumes(inputs.monthly_volumes.lazy(), period, plan.min_monthly_pv_cents).collect()
    base = (
        tree.nodes.join(personal, on="user_id", how="left", maintain_order="left")
        .join(
            inputs.users.select("user_id", "previous_rank"),
            on="user_id",
            how="left",
            maintain_order="left",
        )
        .with_columns(
            pl.col("personal_volume_total_cents").fill_null(0),
            pl.col("monthly_pv_cents").fill_null(0),
        )
        .with_columns(is_active=activity.is_active(pl.col("monthly_pv_cents"), plan.min_monthly_pv_cents))
    )
    # One pass up the levels for everything summed over the downline: full volume and active
    # partners within the depth limit, the whole team's size without it.
    downline = descendant_totals(
        tree,
        pl.DataFrame(
            {
                "full_volume_cents": base["personal_volume_total_cents"],
                "active_in_downline": base["is_active"].cast(pl.Int64),
                "team_size": pl.repeat(1, tree.size, dtype=pl.Int64, eager=True),
            }
        ),
        plan.max_depth,
        unlimited=("team_size",),
    )
    branches = volumes.branches(tree, base["personal_volume_total_cents"], downline["full_volume_cents"]).join(
        inputs.users.select(pl.col("user_id").alias("referral_user_id"), pl.col("first_name").alias("referral_name")),
        on="referral_user_id",
        how="left",
        maintain_order="left",
    )
    team = pl.DataFrame(
        {
            "full_volume_cents": downline["full_volume_cents"],
            "active_partners": activity.active_partners(tree, base["is_active"], downline["active_in_downline"], plan),
            "direct_referrals": activity.direct_referrals(tree),
            "team_size": downline["team_size"].cast(pl.Int32),
        }
    )
    # A user outside the tree or held out (quarantined) is not written, so it must not take a
    # new slot; its stored grant still holds its slot and its number.
    held_out = pl.Series("user_id", [], pl.Int64) if held_out is None else held_out
    candidates = inputs.pioneer_candidates.join(tree.nodes.select("user_id"), on="user_id", how="semi")
    granted = pioneers(inputs.users, candidates, plan.pioneer_slots, held_out)
    unkeepable = held_number_problems(granted, inputs.users, held_out)
    if unkeepable:
        raise InputRejected(unkeepable)
    state = (
        pl.concat([base, team, volumes.qualifying_volumes(tree, branches, plan)], how="horizontal")
        .join(granted.select(PIONEER_COLUMNS), on="user_id", how="left", maintain_order="left")
        .with_columns(
            pioneer_count=pl.lit(granted.height, pl.Int32),
            previous_rank_order=ranks.rank_order_of(pl.col("previous_rank"), plan),
            qualified_rank_order=ranks.qualified_rank_order(plan),
        )
        .with_columns(
            # The root takes no rank checks: its qualified rank is the one it holds.
            qualified_rank_order=pl.when(pl.col("is_root") & plan.root_takes_no_rank_checks)
            .then(pl.col("previous_rank_order"))
            .otherwise(pl.col("qualified_rank_order"))
        )
        .with_columns(rank_order=ranks.held_rank_order(plan))
        .with_columns(
            next_rank_order=ranks.next_rank_order(plan),
            rank_rose=pl.col("rank_order") > pl.col("previous_rank_order"),
            rank=ranks.rank_name_of(pl.col("rank_order"), plan),
            qualified_rank=ranks.rank_name_of(pl.col("qualified_rank_order"), plan),
            previous_rank=ranks.rank_name_of(pl.col("previous_rank_order"), plan),
        )
        .with_columns(ranks.next_rank_targets(plan))
    )
    return state, branches


def with_previous_ranks(inputs: Inputs, previous: pl.DataFrame, plan: Plan) -> Inputs:
    """The inputs with each user's previous rank taken from ``previous`` (``user_id``,
    ``previous_rank``; one row per user) instead of the stored rank; users it does not list start
    at the entry rank. Used when rebuilding history, where the stored rank is today's."""
    users = (
        inputs.users.drop("previous_rank")
        .join(previous.select("user_id", "previous_rank"), on="user_id", how="left", maintain_order="left")
        .with_columns(pl.col("previous_rank").fill_null(plan.ranks[0].name))
        .select(inputs.users.columns)
    )
    return Inputs(users, inputs.monthly_volumes, inputs.pioneer_candidates, inputs.purchase_problems)


def with_held_ranks(state: pl.DataFrame, held: pl.DataFrame, plan: Plan) -> pl.DataFrame:
    """``state`` with each user's held rank replaced by ``held`` (``user_id``, ``rank_order``; at
    most one row per user; a user it does not list keeps its rank), and everything that follows
    from the rank (next rank, its requirement, cap, qualifying volume and gap) recomputed. Used
    when ranks are carried across months."""
    return (
        state.join(held.select("user_id", pl.col("rank_order").alias("held_rank_order")), on="user_id", how="left", maintain_order="left")
        .with_columns(rank_order=pl.coalesce("held_rank_order", "rank_order"))
        .with_columns(next_rank_order=ranks.next_rank_order(plan), rank=ranks.rank_name_of(pl.col("rank_order"), plan))
        .with_columns(ranks.next_rank_targets(plan))
        .select(state.columns)
    )


def rank_changes(state: pl.DataFrame) -> pl.DataFrame:
    """One row per user whose rank rose: the rank_history rows to write."""
    return state.filter(pl.col("rank_rose")).select(
        "user_id",
        "previous_rank",
        pl.col("rank").alias("new_rank"),
        pl.col("full_volume_cents").alias("team_volume_cents"),
        "active_partners",
    )
