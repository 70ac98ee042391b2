"""transforms.explain on hand-built trees and users: which nodes a subtree and a sponsor chain
hold, each rank's requirements against a user's values, the rule that decides its rank, what
blocks the next rank, and its place in the pioneer order. No database: the flows' explain tests
(tests/flows/test_explain.py) check the same report against a stored platform."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest

from tests.transforms.test_reference import scaled_plan
from tests.transforms.test_tree import ROOT, users
from transforms.explain import (
    ancestors_at,
    blocking_requirements,
    held_rank_reason,
    node_of,
    pioneer_order,
    rank_requirements,
    sponsor_chain,
    subtree,
)
from transforms.tree import referral_tree

# 1 is the root; 2 and 3 its referrals; 4 and 5 under 2; 6 under 4; 7 under 3.
#        1
#      2   3
#     4 5   7
#     6
LINKS = {1: 1, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 3}
PLAN = scaled_plan()  # start, builder (10.00 / 100.00 / 2), growth (50.00 / 1000.00 / 4), ...


@pytest.fixture(scope="module")
def tree():
    return referral_tree(users(LINKS), ROOT)


def _user_ids(tree, nodes) -> list[int]:
    return tree.nodes["user_id"].gather(pl.Series(nodes).cast(pl.Int64)).to_list()


def test_ancestors_at_climbs_each_row_its_own_distance_and_stops_at_the_root(tree):
    six = node_of(tree, 6)
    nodes = pl.Series([six] * 5 + [node_of(tree, 7)])
    # 6 -> 4 -> 2 -> 1, and the root stays the root however far past it
    found = ancestors_at(tree, nodes, pl.Series([0, 1, 2, 3, 9, 1]))
    assert found.name == "ancestor"
    assert _user_ids(tree, found) == [6, 4, 2, 1, 1, 3]


def test_ancestors_at_uses_every_bit_of_a_distance():
    # a chain 1..20: distances with bits 1, 2, 4, 8 and 16 set, alone and together
    chain = referral_tree(users({1: 1, **{u: u - 1 for u in range(2, 21)}}), ROOT)
    bottom = node_of(chain, 20)
    distances = [1, 2, 4, 8, 16, 3, 5, 19]
    found = ancestors_at(chain, pl.Series([bottom] * len(distances)), pl.Series(distances))
    assert _user_ids(chain, found) == [20 - d for d in distances]


def test_node_of_finds_a_user_and_none_outside_the_tree(tree):
    assert _user_ids(tree, [node_of(tree, 5)]) == [5]
    assert node_of(tree, 99) is None


def test_a_subtree_is_the_node_and_everyone_below_it_at_their_relative_depths(tree):
    below_two = subtree(tree, node_of(tree, 2))
    assert dict(zip(below_two["user_id"], below_two["relative_depth"])) == {2: 0, 4: 1, 5: 1, 6: 2}
    assert subtree(tree, node_of(tree, 7))["user_id"].to_list() == [7]
    assert sorted(subtree(tree, tree.root_node)["user_id"]) == list(LINKS)


def test_a_sponsor_chain_lists_the_sponsors_nearest_first_and_is_empty_for_the_root(tree):
    chain = sponsor_chain(tree, node_of(tree, 6))
    assert chain.select("levels_up", "user_id", "telegram_id", "depth").rows() == [(1, 4, 1004, 2), (2, 2, 1002, 1), (3, 1, 1001, 0)]
    assert sponsor_chain(tree, tree.root_node).height == 0


def _user(**values) -> dict:
    """One row of user_state with what explain reads (volumes in cents)."""
    row = {
        "personal_volume_total_cents": 0,
        "active_partners": 0,
        "is_active": True,
        "is_root": False,
        "previous_rank_order": 0,
        "qualified_rank_order": 0,
        "rank_order": 0,
        "previous_rank": "start",
        "qualified_rank": "start",
        "rank": "start",
    }
    row.update({f"qualifying_{rank.name}_cents": 0 for rank in PLAN.ranks})
    row.update(values)
    return row


def test_rank_requirements_lay_each_requirement_beside_the_users_value():
    # builder asks 10.00 personal, 100.00 qualifying (leg cap 50.00) and 2 partners
    user = _user(personal_volume_total_cents=1500, qualifying_builder_cents=9000, qualifying_growth_cents=9000, active_partners=2)
    rows = {row["rank"]: row for row in rank_requirements(user, PLAN)}
    assert list(rows) == PLAN.rank_names and [row["order"] for row in rows.values()] == list(range(len(PLAN.ranks)))
    builder = rows["builder"]
    assert builder["leg_cap_cents"] == 5000 and builder["qualifies"] is False
    assert builder["requirements"] == [
        {"requirement": "personal_volume_cents", "required": 1000, "has": 1500, "met": True, "missing": 0},
        {"requirement": "qualifying_volume_cents", "required": 10000, "has": 9000, "met": False, "missing": 1000},
        {"requirement": "active_partners", "required": 2, "has": 2, "met": True, "missing": 0},
    ]
    assert rows["start"]["qualifies"] is True  # the entry rank requires nothing
    # exactly at every requirement qualifies
    exact = _user(personal_volume_total_cents=1000, qualifying_builder_cents=10000, active_partners=2)
    assert {row["rank"]: row["qualifies"] for row in rank_requirements(exact, PLAN)}["builder"] is True


@pytest.mark.parametrize(
    "values, rule",
    [
        (dict(is_root=True, previous_rank_order=1, qualified_rank_order=1, rank_order=1, previous_rank="builder", qualified_rank="builder", rank="builder"),
         "the root takes no rank checks: it keeps the rank it holds"),
        (dict(previous_rank_order=0, qualified_rank_order=2, rank_order=2, qualified_rank="growth", rank="growth"),
         "promoted: qualifies for growth and may be promoted (active: True)"),
        (dict(is_active=False, qualified_rank_order=1, qualified_rank="builder"),
         "qualifies for builder but is not active this month: promotion only while active"),
        (dict(previous_rank_order=2, qualified_rank_order=1, rank_order=2, previous_rank="growth", qualified_rank="builder", rank="growth"),
         "qualifies only for builder; ranks never go down, so it keeps growth"),
        (dict(previous_rank_order=1, qualified_rank_order=1, rank_order=1, previous_rank="builder", qualified_rank="builder", rank="builder"),
         "qualifies for builder, the rank it already holds"),
    ],
)  # fmt: skip
def test_held_rank_reason_names_the_rule_that_decided(values, rule):
    user = _user(**values)
    assert held_rank_reason(user, PLAN, None) == {
        "previous_rank": user["previous_rank"], "qualified_rank": user["qualified_rank"], "rank": user["rank"], "rule": rule,
    }  # fmt: skip


def test_a_root_is_checked_like_anyone_when_the_plan_checks_the_root():
    user = _user(is_root=True, qualified_rank_order=1, rank_order=1, qualified_rank="builder", rank="builder")
    rule = held_rank_reason(user, scaled_plan(root_takes_no_rank_checks=False), None)["rule"]
    assert rule == "promoted: qualifies for builder and may be promoted (active: True)"


def test_an_assigned_rank_is_named_only_when_it_is_the_rank_held_before():
    user = _user(previous_rank_order=2, qualified_rank_order=0, rank_order=2, previous_rank="growth", rank="growth")
    assert held_rank_reason(user, PLAN, "growth")["rule"] == (
        "qualifies only for start; ranks never go down, so it keeps growth"
        "; growth was assigned by hand (mlmStatus.assignedRank) and is kept like any rank held"
    )
    assert "assigned" not in held_rank_reason(user, PLAN, "builder")["rule"]


def test_blocking_requirements_are_the_next_ranks_unmet_ones_or_activity():
    short = _user(personal_volume_total_cents=1000, qualifying_builder_cents=4000, active_partners=1)
    blocking = blocking_requirements(rank_requirements(short, PLAN), short, PLAN)
    assert blocking["rank"] == "builder" and blocking["needs_activity"] is False
    assert [(r["requirement"], r["missing"]) for r in blocking["unmet"]] == [("qualifying_volume_cents", 6000), ("active_partners", 1)]

    ready = _user(is_active=False, personal_volume_total_cents=1000, qualifying_builder_cents=10000, active_partners=2)
    assert blocking_requirements(rank_requirements(ready, PLAN), ready, PLAN) == {"rank": "builder", "unmet": [], "needs_activity": True}
    # a plan that promotes inactive users has nothing to block them
    anyone = scaled_plan(promote_only_active=False)
    assert blocking_requirements(rank_requirements(ready, anyone), ready, anyone)["needs_activity"] is False
    # active, requirements met: nothing needed (the run promotes it)
    met = ready | {"is_active": True}
    assert blocking_requirements(rank_requirements(met, PLAN), met, PLAN) == {"rank": "builder", "unmet": [], "needs_activity": False}


def test_nothing_blocks_the_top_rank():
    top = len(PLAN.ranks) - 1
    user = _user(rank_order=top)
    assert blocking_requirements(rank_requirements(user, PLAN), user, PLAN) is None
    below_top = _user(rank_order=top - 1)
    assert blocking_requirements(rank_requirements(below_top, PLAN), below_top, PLAN)["rank"] == PLAN.ranks[top].name


def _at(day: int, hour: int = 0) -> datetime:
    return datetime(2025, 10, day, hour)


# Built when a test asks, not when the module is imported: a frame built at import starts Polars'
# thread pool, and mutmut's workers, forked after collection, then hang on their first Polars call.
def _candidates() -> pl.DataFrame:
    """Five pioneer candidates; 12 and 13 bought at the same moment: the purchase id orders them."""
    return pl.DataFrame(
        {
            "user_id": [10, 11, 12, 13, 14],
            "purchase_id": [100, 101, 102, 103, 104],
            "purchased_at": [_at(1), _at(2), _at(3), _at(3), _at(5)],
        },
        schema={"user_id": pl.Int64, "purchase_id": pl.Int64, "purchased_at": pl.Datetime("us")},
    )


def _granted() -> pl.DataFrame:
    """10 held a stored grant; 11 and 12 are new grants this run."""
    return pl.DataFrame(
        {
            "user_id": [10, 11, 12],
            "is_new_pioneer": [False, True, True],
            "pioneer_granted_at": [_at(1), _at(2), _at(3)],
            "pioneer_purchase_id": [100, 101, 102],
        },
        schema={"user_id": pl.Int64, "is_new_pioneer": pl.Boolean, "pioneer_granted_at": pl.Datetime("us"), "pioneer_purchase_id": pl.Int64},
    )


def test_pioneer_order_counts_the_candidates_not_yet_granted_before_the_user():
    order = pioneer_order(_candidates(), _granted(), 13)
    # before 13: 11 and 12 (12 at the same moment with a lower purchase id); 10's stored grant is not waiting
    assert order == {
        "candidate": {"purchase_id": 103, "purchased_at": "2025-10-03T00:00:00"},
        "candidates_before": 2,
        "last_new_grant": {"purchase_id": 102, "purchased_at": _at(3)},
        "stored_grants": 1,
    }
    assert pioneer_order(_candidates(), _granted(), 11)["candidates_before"] == 0
    assert pioneer_order(_candidates(), _granted(), 14)["candidates_before"] == 3


def test_the_last_new_grant_is_the_latest_in_time_whatever_its_purchase_id():
    # purchase ids need not follow time: 12's grant (purchase 102) is later than 11's (purchase 150)
    granted = _granted().with_columns(pioneer_purchase_id=pl.Series([100, 150, 102]))
    assert pioneer_order(_candidates(), granted, 13)["last_new_grant"] == {"purchase_id": 102, "purchased_at": _at(3)}


def test_pioneer_order_of_a_user_without_a_qualifying_purchase_is_no_candidate():
    assert pioneer_order(_candidates(), _granted(), 99) == {"candidate": None}


def test_pioneer_order_without_new_grants_has_no_last_grant():
    stored_only = _granted().filter(~pl.col("is_new_pioneer"))
    order = pioneer_order(_candidates(), stored_only, 12)
    assert order["last_new_grant"] is None and order["stored_grants"] == 1 and order["candidates_before"] == 1


def _us(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1)).total_seconds()) * 1_000_000


def test_pioneer_order_counts_only_up_to_a_complete_prefix():
    # candidates known up to 12's purchase (3 October, purchase 102): a user after it has no
    # count; one at it or before it has
    at_12 = (_us(_at(3)), 102)
    assert pioneer_order(_candidates(), _granted(), 12, complete_until=at_12)["candidates_before"] == 1
    assert pioneer_order(_candidates(), _granted(), 11, complete_until=at_12)["candidates_before"] == 0
    # 13 bought at the same moment as 12 with a later purchase id: past the prefix, until it is in it
    assert pioneer_order(_candidates(), _granted(), 13, complete_until=at_12)["candidates_before"] is None
    assert pioneer_order(_candidates(), _granted(), 13, complete_until=(_us(_at(3)), 103))["candidates_before"] == 2
    assert pioneer_order(_candidates(), _granted(), 14, complete_until=(_us(_at(4)), 999))["candidates_before"] is None
