"""Pioneers: the first users, company-wide, to make one purchase of at least the plan's minimum.

A stored grant is permanent and holds its slot; remaining slots go to the next candidates by the
qualifying purchase's (createdAt, purchaseID). Every pioneer, stored or new, is numbered 1..N by
(grantedAt, purchaseId), except a quarantined (held out) one: it is not written, so it keeps its
stored number and the others take the remaining numbers in that order.
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
    """Stored pioneer keys of the wrong shape (``bad_pioneer_keys``, one problem per distinct
    description), stored times that cannot be read, and stored grants beyond the slots."""
    granted = users.filter(pl.col("has_pioneer_bonus").fill_null(False))
    wrong_shape = users.filter(pl.col("bad_pioneer_keys").is_not_null()).group_by("bad_pioneer_keys").agg("user_id").sort("bad_pioneer_keys")
    found = [problem("bad_document", ids, detail) for detail, ids in wrong_shape.iter_rows()]
    # A pioneer key is bad wherever it is stored: the platform reads it whether or not the
    # user holds the grant.
    unreadable = users.filter(pl.col("pioneer_granted_at").is_not_null() & grant_time(pl.col("pioneer_granted_at")).is_null())
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


def pioneers(users: pl.DataFrame, candidates: pl.DataFrame, slots: int, held_out: pl.Series | None = None) -> pl.DataFrame:
    """Every pioneer after this run, numbered; one row per pioneer.

    ``users``: ``user_id``, ``has_pioneer_bonus``, ``pioneer_granted_at`` (text),
    ``pioneer_purchase_id``, ``pioneer_number`` (stored). ``candidates``: one row per user, its
    first purchase at or above the minimum before the cut-off: ``user_id``, ``purchase_id``,
    ``purchased_at``. ``held_out``: the userIDs left out of the write (quarantined): none of
    them takes a new slot, and a stored pioneer among them keeps its number (see
    :func:`held_number_problems` for numbers that cannot be kept).
    """
    held = pl.Series("user_id", [], pl.Int64) if held_out is None else held_out.cast(pl.Int64)
    candidates = candidates.filter(~pl.col("user_id").is_in(held.implode()))
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
    everyone = pl.concat([kept, new]).with_columns(is_held=pl.col("user_id").is_in(held.implode()))
    holding = everyone.filter(pl.col("is_held")).join(users.select("user_id", "pioneer_number"), on="user_id", how="left")
    # The numbers the held pioneers do not hold, in order, for the others in grant order.
    free = pl.DataFrame({"pioneer_number": pl.int_range(1, everyone.height + 1, dtype=pl.Int64, eager=True)}).join(
        holding.select("pioneer_number"), on="pioneer_number", how="anti", maintain_order="left"
    )
    numbered = everyone.filter(~pl.col("is_held")).sort("granted_at", "purchase_id", nulls_last=True)
    numbered = numbered.with_columns(free["pioneer_number"].head(numbered.height))
    return (
        pl.concat([numbered, holding.select(numbered.columns)])
        .sort("pioneer_number", nulls_last=True)
        .select(
            "user_id",
            iso_text(pl.col("granted_at")).alias("pioneer_granted_at"),
            pl.col("purchase_id").alias("pioneer_purchase_id"),
            pl.col("pioneer_number").cast(pl.Int32),
            "is_new_pioneer",
        )
    )


def held_number_problems(granted: pl.DataFrame, users: pl.DataFrame, held_out: pl.Series) -> list[Problem]:
    """The held-out pioneers among ``granted`` (what :func:`pioneers` returned) whose stored
    number cannot be kept: missing, shared with another held pioneer, or beyond the count of
    pioneers. The others could not be numbered 1..N around them, so the run must be refused."""
    held = (
        granted.filter(pl.col("user_id").is_in(held_out.cast(pl.Int64).implode()))
        .select("user_id")
        .join(users.select("user_id", "pioneer_number"), on="user_id", how="left")
    )
    unusable = held.filter(
        pl.col("pioneer_number").is_null() | pl.col("pioneer_number").is_duplicated() | (pl.col("pioneer_number") > granted.height)
    )
    if unusable.is_empty():
        return []
    numbers = ", ".join(f"userID {u}: {'none' if n is None else n}" for u, n in unusable.sort("user_id").head(20).iter_rows())
    return [problem("held_pioneer_number", unusable["user_id"], f"{granted.height} pioneers; stored numbers {numbers}")]
