"""Computed money against the width of the column it is written to: which users, which column,
how far over; and the users left out of everything written under quarantine."""

from __future__ import annotations

import polars as pl

from tests.transforms.test_reference import large_case, run, scaled_plan
from transforms.column_limits import ColumnLimit, overflow_problems, without_users
from transforms.problems import problem

# numeric(5,2) holds up to 999.99: 99,999 cents
SMALL = ColumnLimit(computed="a_cents", column='"smallColumn"', sql_type="numeric(5,2)", max_cents=99_999)
WIDE = ColumnLimit(computed="b_cents", column='"wideColumn"', sql_type="numeric(14,2)", max_cents=99_999_999_999_999)


def test_values_beyond_a_columns_limit_either_way_are_one_problem_naming_the_users_and_the_largest():
    state = pl.DataFrame(
        {
            "user_id": [5, 4, 3, 2, 1],
            # at the limit fits, either sign; a cent over does not; the largest is said
            "a_cents": [99_999, -99_999, 100_000, -123_456_789, 0],
            "b_cents": [1, 2, 3, 4, 5],
        }
    )
    assert overflow_problems(state, [SMALL, WIDE]) == [
        problem("value_overflow", [3, 2], '"smallColumn" is numeric(5,2), at most 999.99; computed up to 1,234,567.89')
    ]
    # every column is checked, each its own problem, in the order of the limits
    state = state.with_columns(b_cents=pl.Series([100_000_000_000_000, 0, 0, 0, 5]))
    assert overflow_problems(state, [WIDE, SMALL]) == [
        problem("value_overflow", [5], '"wideColumn" is numeric(14,2), at most 999,999,999,999.99; computed up to 1,000,000,000,000.00'),
        problem("value_overflow", [2, 3], '"smallColumn" is numeric(5,2), at most 999.99; computed up to 1,234,567.89'),
    ]
    assert overflow_problems(state.head(2), [SMALL]) == [] and overflow_problems(state, []) == []


def test_the_users_named_are_left_out_of_the_state_and_rank_changes_and_counted_as_quarantined():
    result = run(large_case(3, scaled_plan(), users=60, chain=10, purchases=300))  # six ranks change
    assert result.rank_changes.height > 0, "the case must change some rank for this test to see it"
    changed = sorted(result.rank_changes["user_id"])[:2]
    other = next(u for u in result.state["user_id"] if u not in changed)
    found = [problem("value_overflow", changed, "x"), problem("value_overflow", [other, changed[0]], "y")]
    held_out = sorted({*changed, other})
    kept = without_users(result, found)
    assert sorted(kept.state["user_id"]) == sorted(u for u in result.state["user_id"] if u not in held_out)
    assert sorted(kept.rank_changes["user_id"]) == sorted(u for u in result.rank_changes["user_id"] if u not in held_out)
    assert kept.problems == result.problems + tuple(found)
    assert kept.quarantined_user_ids == tuple(sorted(set(result.quarantined_user_ids) | set(held_out)))
    assert (kept.branches, kept.plan, kept.provenance, kept.quarantined_purchase_ids) == (result.branches, result.plan, result.provenance, result.quarantined_purchase_ids)
