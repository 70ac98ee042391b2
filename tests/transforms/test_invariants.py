"""Invariants of every recompute, whatever the data: money reconciles, one row per user, valid JSON,
pioneers numbered 1..N within the slots, ranks never down.

Checked on random small cases (hypothesis) and on a seeded tree of 5,000 users.
"""

from __future__ import annotations

import json
from decimal import Decimal

import polars as pl
import pytest
from hypothesis import given
from polars.testing import assert_frame_equal

from tests.transforms import reference
from tests.transforms.test_reference import DEFAULT_PLAN, Case, cases, examples, large_case, plans, run, scaled_plan
from transforms.recompute import Recomputed

JSON_COLUMNS = ["mlm_volumes", "mlm_status", "total_volume"]


def _cents(money: Decimal) -> int:
    cents = money * 100
    assert cents == cents.to_integral_value(), f"{money} has more than two decimal places"
    return int(cents)


def _counted_cents(case: Case) -> int:
    return sum(p.price_cents for p in case.purchases if p.created_at < case.as_of)


def assert_invariants(case: Case, result: Recomputed) -> None:
    plan = case.plan
    unlimited = plan.max_depth is None
    user_ids = sorted(u.user_id for u in case.users)
    root_id = reference.root_of(case.users, case.root_telegram_id).user_id

    # Exactly one row per user, in the state and in the documents.
    assert sorted(result.state["user_id"]) == user_ids
    assert sorted(result.documents["user_id"]) == user_ids
    # The documents made a few users at a time (as the write makes them) are the whole frame's:
    # one and three users a batch on the small cases, uneven batches of 997 on the large tree.
    for batch_rows in (1, 3) if len(user_ids) <= 100 else (997,):
        assert_frame_equal(pl.concat(result.document_batches(batch_rows)), result.documents)

    # Every JSON column is a JSON object, on every row.
    documents = {}
    for row in result.documents.iter_rows(named=True):
        parsed = {column: json.loads(row[column], parse_float=Decimal) for column in JSON_COLUMNS}
        for column, value in parsed.items():
            assert isinstance(value, dict), f"user {row['user_id']} {column} is {type(value).__name__}: {row[column]}"
        documents[row["user_id"]] = parsed
    state = {row["user_id"]: row for row in result.state.iter_rows(named=True)}

    for user_id, row in state.items():
        total = documents[user_id]["total_volume"]
        branches = total["branches"]
        assert _cents(total["fullVolume"]) == row["full_volume_cents"]
        assert len(branches) == row["direct_referrals"]
        if unlimited:
            # With no depth limit, a user's full volume is exactly the sum of its branches.
            assert row["full_volume_cents"] == sum(_cents(b["fullVolume"]) for b in branches), f"user {user_id}"
        assert row["gap_cents"] == max(0, row["required_for_next_rank_cents"] - row["qualifying_volume_cents"])
        volumes = documents[user_id]["mlm_volumes"]
        assert _cents(volumes["personalTotal"]) == row["personal_volume_total_cents"]
        assert _cents(Decimal(volumes["monthlyPV"])) == row["monthly_pv_cents"]

    # Money reconciles: the root's full volume and its own purchases are every purchase counted.
    root = state[root_id]
    if unlimited or (plan.max_depth or 0) >= len(case.users):
        assert root["full_volume_cents"] + root["personal_volume_total_cents"] == _counted_cents(case)
    assert sum(row["personal_volume_total_cents"] for row in state.values()) == _counted_cents(case)

    # Pioneers: numbered 1..N without repeats, never more than the slots, stored grants kept.
    numbers = sorted(n for n in result.state["pioneer_number"] if n is not None)
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) <= plan.pioneer_slots
    assert documents[root_id]["mlm_status"]["pioneerPurchasesCount"] == len(numbers)
    for user in case.users:
        if user.has_pioneer_bonus:
            assert state[user.user_id]["pioneer_number"] is not None, f"user {user.user_id} lost its pioneer grant"

    # Ranks never go down; a rise is reported exactly when the rank rose.
    order = {name: position for position, name in enumerate(plan.rank_names)}
    previous = {u.user_id: order[u.previous_rank or plan.rank_names[0]] for u in case.users}
    for user_id, row in state.items():
        assert order[row["rank"]] >= previous[user_id], f"user {user_id} went down"
        assert row["rank_rose"] == (order[row["rank"]] > previous[user_id])
    assert sorted(result.rank_changes["user_id"]) == sorted(u for u, row in state.items() if row["rank_rose"])


@examples(50)
@given(cases(plan_strategy=plans().map(lambda plan: plan.with_overrides({"max_depth": None}))))
def test_invariants_hold_without_a_depth_limit(case):
    assert_invariants(case, run(case))


@examples(50)
@given(cases())
def test_invariants_hold_under_any_plan(case):
    assert_invariants(case, run(case))


@pytest.mark.parametrize(
    "plan",
    [
        # no depth limit: full volume = sum of branches, and the root's covers every purchase
        scaled_plan(max_depth=None),
        # the production plan itself (depth 50 on a 60-level chain, production thresholds)
        DEFAULT_PLAN,
    ],
    ids=["unlimited-scaled", "default"],
)
def test_invariants_hold_on_five_thousand_users(plan):
    case = large_case(seed=5000, plan=plan, users=5000, chain=60, purchases=20000, stored_pioneers=3)
    assert_invariants(case, run(case))
