"""Computed money against the widths of the columns it is written to.

A price the schema allows (``packPrice numeric(12,2)`` holds 9,999,999,999.99) can add up to a
personal or team volume that the written column cannot hold. PostgreSQL would refuse the whole
write with a numeric overflow naming no user; here every computed value is compared with its
column's limit first, so the run is refused naming the users, or leaves them out under
quarantine, before anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import polars as pl

from transforms.problems import Problem, problem
from transforms.recompute import Recomputed


@dataclass(frozen=True)
class ColumnLimit:
    """The largest absolute value, in cents, that ``column`` (its SQL type ``sql_type``) holds;
    one per computed money column of the state that is written to it."""

    computed: str
    column: str
    sql_type: str
    max_cents: int


def overflow_problems(state: pl.DataFrame, limits: list[ColumnLimit]) -> list[Problem]:
    """One ``value_overflow`` problem per written column that some user's computed value does
    not fit in, naming those users (``state``: one row per user)."""
    found = []
    for limit in limits:
        too_large = state.filter(pl.col(limit.computed).abs() > limit.max_cents)
        if too_large.height:
            largest = too_large[limit.computed].abs().max()
            found.append(
                problem(
                    "value_overflow",
                    too_large["user_id"],
                    f"{limit.column} is {limit.sql_type}, at most {limit.max_cents // 100:,}.{limit.max_cents % 100:02d};"
                    f" computed up to {largest // 100:,}.{largest % 100:02d}",
                )
            )
    return found


def without_users(result: Recomputed, problems: list[Problem]) -> Recomputed:
    """``result`` with the users named by ``problems`` left out of everything written, and the
    problems added to what was quarantined."""
    held_out = sorted({i for p in problems for i in p.ids})
    kept = ~pl.col("user_id").is_in(held_out)
    return replace(
        result,
        state=result.state.filter(kept),
        rank_changes=result.rank_changes.filter(kept),
        problems=result.problems + tuple(problems),
        quarantined_user_ids=tuple(sorted(set(result.quarantined_user_ids) | set(held_out))),
    )
