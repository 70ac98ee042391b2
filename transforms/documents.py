"""The documents the recompute writes: owned keys of ``mlmVolumes`` and ``mlmStatus``, the whole
``totalVolume``, and the scalar columns. One row per user, ready for the load step to merge.

Only the keys listed here are the recompute's; the load step merges them into what is stored,
so every other key (founder flags, grace streaks, autoship, ...) stays as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from transforms import json_text as js
from transforms.fingerprints import fingerprint
from transforms.ranks import rank_name_of
from transforms.plan import Plan

DOCUMENT_COLUMNS = [
    "user_id",
    "rank",
    "is_active",
    "full_volume_cents",
    "personal_volume_total_cents",
    "mlm_volumes",
    "mlm_status",
    "total_volume",
    "rank_rose",
    "fingerprint",
]
# Users per batch when documents are made a batch at a time (``Recomputed.document_batches``): the JSON text
# of one batch is about 100 MB; the whole frame at 10M users would be over 5 GB.
DOCUMENT_BATCH_ROWS = 200_000
# Keys that say where a totalVolume came from; a document differing only in these is unchanged.
PROVENANCE_KEYS = ("calculatedAt", "runId", "planVersion", "asOf")


@dataclass(frozen=True)
class Provenance:
    """Which run computed a document, under which plan, as of when."""

    run_id: int
    plan_version: str
    as_of: datetime
    calculated_at: datetime


def mlm_volumes() -> pl.Expr:
    """The owned keys of ``mlmVolumes``: ``monthlyPV`` (a decimal string) and ``personalTotal`` (a number)."""
    return js.obj(
        js.member("monthlyPV", js.string(js.money(pl.col("monthly_pv_cents")))),
        js.member("personalTotal", js.money(pl.col("personal_volume_total_cents"))),
    )


def mlm_status(as_of: datetime) -> pl.Expr:
    """The owned keys of ``mlmStatus``: always ``lastActiveMonth``; ``rankQualifiedAt`` only when the
    rank rose; the pioneer keys only for pioneers; ``pioneerPurchasesCount`` only on the root."""
    is_pioneer = pl.col("pioneer_number").is_not_null()
    return js.obj(
        js.member("lastActiveMonth", js.string(pl.col("last_active_month"))),
        js.member("rankQualifiedAt", js.string(pl.lit(as_of.isoformat())), when=pl.col("rank_rose")),
        js.member("hasPioneerBonus", pl.lit("true"), when=is_pioneer),
        js.member("pioneerGrantedAt", js.string(pl.col("pioneer_granted_at")), when=is_pioneer),
        js.member("pioneerPurchaseId", js.number(pl.col("pioneer_purchase_id")), when=is_pioneer),
        js.member("pioneerNumber", js.number(pl.col("pioneer_number")), when=is_pioneer),
        js.member("pioneerPurchasesCount", js.number(pl.col("pioneer_count")), when=pl.col("is_root")),
    )


def branch_lists(user_branches: pl.DataFrame, state: pl.DataFrame) -> pl.DataFrame:
    """Each sponsor's branches as a JSON array, largest first, ties by referralUserId; one row per
    sponsor (``parent_node``, ``branches``). A branch is capped at the sponsor's next-rank cap."""
    caps = state.select(pl.col("node").alias("parent_node"), "cap_limit_cents")
    branch = js.obj(
        js.member("referralTelegramId", js.number(pl.col("referral_telegram_id"))),
        js.member("referralName", js.string(pl.col("referral_name"))),
        js.member("referralUserId", js.number(pl.col("referral_user_id"))),
        js.member("fullVolume", js.money(pl.col("branch_cents"))),
        js.member("cappedVolume", js.money(pl.min_horizontal("branch_cents", "cap_limit_cents"))),
        js.member("isCapped", js.boolean(pl.col("branch_cents") > pl.col("cap_limit_cents"))),
    )
    return (
        user_branches.join(caps, on="parent_node", how="left")
        # One global sort puts every sponsor's branches in order; the grouping keeps that order.
        .sort(["parent_node", "branch_cents", "referral_user_id"], descending=[False, True, False])
        .select("parent_node", branch.alias("branch"))
        .group_by("parent_node", maintain_order=True)
        .agg(pl.col("branch").str.join(","))
        .select("parent_node", pl.concat_str(pl.lit("["), "branch", pl.lit("]")).alias("branches"))
    )


def total_volume_core(plan: Plan) -> pl.Expr:
    """``totalVolume`` without its provenance: progress toward the next rank, and the branches."""
    return js.obj(
        js.member("qualifyingVolume", js.money(pl.col("qualifying_volume_cents"))),
        js.member("fullVolume", js.money(pl.col("full_volume_cents"))),
        js.member("requiredForNextRank", js.money(pl.col("required_for_next_rank_cents"))),
        js.member("gap", js.money(pl.col("gap_cents"))),
        js.member("nextRank", js.string(rank_name_of(pl.col("next_rank_order"), plan))),
        js.member("currentRank", js.string(pl.col("rank"))),
        js.member("capLimit", js.money(pl.col("cap_limit_cents"))),
        js.member("branches", pl.col("branches").fill_null(pl.lit("[]"))),
    )


def total_volume(core: pl.Expr, provenance: Provenance) -> pl.Expr:
    """The whole ``totalVolume`` document: its ``core`` with the provenance members appended."""
    stamp = js.obj(
        js.member("calculatedAt", js.string(pl.lit(provenance.calculated_at.isoformat()))),
        js.member("runId", pl.lit(str(provenance.run_id))),
        js.member("planVersion", js.string(pl.lit(provenance.plan_version))),
        js.member("asOf", js.string(pl.lit(provenance.as_of.isoformat()))),
    )
    # "{...core...}" + "{...stamp...}" -> "{...core...,...stamp...}"
    return pl.concat_str(core.str.head(-1), pl.lit(","), stamp.str.tail(-1))


def owned_values_fingerprint() -> pl.Expr:
    """A hash of everything the write compares: the scalar columns, the owned keys of
    ``mlmVolumes``/``mlmStatus`` and ``totalVolume`` without provenance (which changes every run)."""
    return fingerprint("rank", "is_active", "full_volume_cents", "personal_volume_total_cents", "mlm_volumes", "mlm_status", "total_volume_core")


def documents(state: pl.DataFrame, user_branches: pl.DataFrame, plan: Plan, provenance: Provenance) -> pl.DataFrame:
    """What to write for every user: the scalar columns, the three JSON values and the fingerprint
    of the owned values; one row per user, in ``state``'s order."""
    return (
        # In ``state``'s order, row for row (callers line other columns of ``state`` up with it).
        state.join(branch_lists(user_branches, state), left_on="node", right_on="parent_node", how="left", maintain_order="left")
        .with_columns(
            mlm_volumes=mlm_volumes(),
            mlm_status=mlm_status(provenance.as_of),
            total_volume_core=total_volume_core(plan),
        )
        .with_columns(total_volume=total_volume(pl.col("total_volume_core"), provenance), fingerprint=owned_values_fingerprint())
        .select(DOCUMENT_COLUMNS)
    )


def user_batches(state: pl.DataFrame, user_branches: pl.DataFrame, batch_rows: int = DOCUMENT_BATCH_ROWS) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """``state`` a batch of at most ``batch_rows`` users at a time, in node order, each with the
    branches of its users (the ``user_branches`` rows whose sponsor is in the batch).

    A batch is a run of consecutive nodes; its sponsors' branches are a run of ``user_branches``
    sorted by sponsor, found by binary search, so each batch costs what its own users cost."""
    if not state["node"].is_sorted():
        state = state.sort("node")
    by_sponsor = user_branches.sort("parent_node")
    sponsors = by_sponsor["parent_node"]
    for batch in state.iter_slices(batch_rows):
        first = sponsors.search_sorted(batch["node"][0], "left")
        last = sponsors.search_sorted(batch["node"][-1], "right")
        yield batch, by_sponsor.slice(first, last - first)
