"""Pioneers: the first users, company-wide, to make one purchase of at least the plan's minimum.

A stored grant is permanent and holds its slot; remaining slots go to the next candidates by the
qualifying purchase's (createdAt, purchaseID). Every pioneer, stored or new, is numbered 1..N by
(grantedAt, purchaseId).
"""

from __future__ import annotations

import polars as pl

from transforms.problems import Problem, problem

PIONEER_COLUMNS = ["user_id", "pioneer_granted_at", "pioneer_purchase_id", "pioneer_number", "is_new_pioneer"]
_ISO = "%Y-%m-%dT%H:%M:%S%.f"


def grant_time(text: pl.Expr) -> pl.Expr:
    """An ISO time as stored in ``pioneerGrantedAt`` (naive UTC, or with an offset) as naive UTC."""
    return pl.coalesce(
        text.str.to_datetime(_ISO, strict=False, time_unit="us"),
        text.str.to_datetime(_ISO + "%:z", strict=False, time_zone="UTC", time_unit="us").dt.replace_time_zone(None),
    )


def iso_text(instant: pl.Expr) -> pl.Expr:
    """Naive UTC time as the platform writes it: ``2025-10-01T07:00:00`` (fraction only if any)."""
    return instant.dt.strftime(_ISO)


def stored_grants(users: pl.DataFrame, candidates: pl.DataFrame) -> pl.DataFrame:
    """The grants already stored (``has_pioneer_bonus``); one row per pioneer. A grant missing its
    time or purchase takes them from the user's qualifying purchase, when there is one."""
    return (
        users.filter(pl.col("has_pioneer_bonus").fill_null(False))
        .select("user_id", grant_time(pl.col("pioneer_granted_at")).alias("granted_at"), "pioneer_purchase_id")
        .join(candidates, on="user_id", how="left")
        .select(
            "user_id",
            pl.coalesce("granted_at", "purchased_at").alias("granted_at"),
            pl.coalesce("pioneer_purchase_id", "purchase_id").alias("purchase_id"),
            pl.lit(False).alias("is_new_pioneer"),
        )
    )


def pioneer_problems(users: pl.DataFrame, slots: int) -> list[Problem]:
    """Stored grants whose time cannot be read, and stored grants beyond the slots."""
    granted = users.filter(pl.col("has_pioneer_bonus").fill_null(False))
    unreadable = granted.filter(pl.col("pioneer_granted_at").is_not_null() & grant_time(pl.col("pioneer_granted_at")).is_null())
    found = []
    if unreadable.height:
        found.append(problem("bad_document", unreadable["user_id"], "mlmStatus.pioneerGrantedAt is not an ISO time"))
    if granted.height > slots:
        found.append(
            problem(
                "pioneer_overflow",
                granted["user_id"],
                f"{granted.height} users hold hasPioneerBonus but the plan has {slots} slots; grants are never taken away, so a person must decide",
            )
        )
    return found


def pioneers(users: pl.DataFrame, candidates: pl.DataFrame, slots: int) -> pl.DataFrame:
    """Every pioneer after this run, numbered; one row per pioneer.

    ``users``: ``user_id``, ``has_pioneer_bonus``, ``pioneer_granted_at`` (text), ``pioneer_purchase_id``.
    ``candidates``: one row per user, its first purchase at or above the minimum before the
    cut-off: ``user_id``, ``purchase_id``, ``purchased_at``.
    """
    kept = stored_grants(users, candidates)
    open_slots = max(0, slots - kept.height)
    new = (
        candidates.join(kept, on="user_id", how="anti")
        .sort("purchased_at", "purchase_id")
        .head(open_slots)
        .select(
            "user_id",
            pl.col("purchased_at").alias("granted_at"),
            "purchase_id",
            pl.lit(True).alias("is_new_pioneer"),
        )
    )
    return (
        pl.concat([kept, new])
        .sort("granted_at", "purchase_id", nulls_last=True)
        .select(
            "user_id",
            iso_text(pl.col("granted_at")).alias("pioneer_granted_at"),
            pl.col("purchase_id").alias("pioneer_purchase_id"),
            pl.int_range(1, pl.len() + 1, dtype=pl.Int32).alias("pioneer_number"),
            "is_new_pioneer",
        )
    )
