"""Ranks across months, as backfill and close rebuild them: carried_ranks (ranks never go down,
month by month, on top of the rank held before), with_previous_ranks (a month starts from the
rank rebuilt for the month before, not today's stored one) and with_held_ranks (a carried rank
replaces the month's own, with everything that follows from it). Pure frames, hand-derived."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_frame_equal

from tests.transforms.test_reference import large_case, run, scaled_plan
from transforms.ranks import carried_ranks
from transforms.recompute import Inputs, with_held_ranks, with_previous_ranks

PLAN = scaled_plan()  # start 0, builder 1, growth 2, leadership 3, director 4
RANKS = PLAN.rank_names


def _months(rows: list[tuple[str, int, int, bool, bool]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={"period": pl.String, "user_id": pl.Int64, "qualified_rank_order": pl.Int8, "is_active": pl.Boolean, "is_root": pl.Boolean},
        orient="row",
    )


def test_a_carried_rank_is_the_running_maximum_of_the_ranks_a_user_could_be_promoted_to():
    months = _months(
        [
            # user 2: growth in August, only builder in September (kept growth), leadership in October
            ("2025-10", 2, 3, True, False),
            ("2025-08", 2, 2, True, False),
            ("2025-09", 2, 1, True, False),
            # user 3: qualifies for growth while inactive in August (no promotion), active in September
            ("2025-08", 3, 2, False, False),
            ("2025-09", 3, 1, True, False),
            # user 4 held director before: a month's lower qualification never lowers it
            ("2025-08", 4, 1, True, False),
            # the root takes no rank checks: it keeps what it held
            ("2025-08", 1, 4, True, True),
            # user 5 is in no initial frame: it starts at the entry rank
            ("2025-08", 5, 1, True, False),
        ]
    )
    initial = pl.DataFrame({"user_id": [1, 2, 3, 4], "previous_rank": ["builder", "start", None, "director"]})
    carried = carried_ranks(months, initial, PLAN)
    assert carried.columns == ["period", "user_id", "rank_order", "rank"]
    assert carried.schema["rank_order"] == pl.Int8
    assert sorted(carried.rows()) == [
        ("2025-08", 1, 1, "builder"),
        ("2025-08", 2, 2, "growth"),
        ("2025-08", 3, 0, "start"),
        ("2025-08", 4, 4, "director"),
        ("2025-08", 5, 1, "builder"),
        ("2025-09", 2, 2, "growth"),
        ("2025-09", 3, 1, "builder"),
        ("2025-10", 2, 3, "leadership"),
    ]


def test_a_plan_that_promotes_inactive_users_and_ranks_the_root_carries_those_months_too():
    months = _months([("2025-08", 3, 2, False, False), ("2025-08", 1, 3, True, True)])
    initial = pl.DataFrame({"user_id": [1, 3], "previous_rank": ["start", "start"]})
    plan = scaled_plan(promote_only_active=False, root_takes_no_rank_checks=False)
    assert sorted(carried_ranks(months, initial, plan).rows()) == [("2025-08", 1, 3, "leadership"), ("2025-08", 3, 2, "growth")]


def _inputs(users: pl.DataFrame) -> Inputs:
    empty = pl.DataFrame()
    return Inputs(users, empty, empty, empty)


def test_with_previous_ranks_takes_the_given_rank_and_the_entry_rank_for_anyone_unlisted():
    users = pl.DataFrame({"user_id": [1, 2, 3], "previous_rank": ["director", "growth", "builder"], "telegram_id": [11, 12, 13]})
    rebuilt = with_previous_ranks(_inputs(users), pl.DataFrame({"user_id": [3, 1], "previous_rank": ["growth", "builder"]}), PLAN)
    assert_frame_equal(rebuilt.users, pl.DataFrame({"user_id": [1, 2, 3], "previous_rank": ["builder", "start", "growth"], "telegram_id": [11, 12, 13]}))


def test_with_held_ranks_recomputes_everything_that_follows_from_the_rank():
    case = large_case(seed=7, plan=PLAN, users=120, chain=10, purchases=600)
    state = run(case).state
    top = len(RANKS) - 1
    # every user gets another rank: each rank in turn, the top one included
    held = state.select("user_id", (pl.int_range(pl.len()) % len(RANKS)).cast(pl.Int8).alias("rank_order"))
    carried = with_held_ranks(state, held, PLAN)
    assert carried.columns == state.columns and carried["user_id"].to_list() == state["user_id"].to_list()
    for row, order in zip(carried.iter_rows(named=True), held["rank_order"]):
        target = PLAN.ranks[min(order + 1, top)]
        qualifying = row[f"qualifying_{target.name}_cents"]
        assert (row["rank_order"], row["rank"], row["next_rank_order"]) == (order, RANKS[order], target.order)
        assert row["required_for_next_rank_cents"] == target.team_volume_cents
        assert row["cap_limit_cents"] == PLAN.leg_cap_cents(target)
        assert row["qualifying_volume_cents"] == qualifying
        assert row["gap_cents"] == max(target.team_volume_cents - qualifying, 0)
    # what does not follow from the rank is the month's own
    untouched = [c for c in state.columns if c not in ("rank_order", "rank", "next_rank_order", "required_for_next_rank_cents", "cap_limit_cents", "qualifying_volume_cents", "gap_cents")]
    assert_frame_equal(carried.select(untouched), state.select(untouched))


def test_with_held_ranks_of_the_ranks_already_held_changes_nothing():
    state = run(large_case(seed=8, plan=PLAN, users=80, chain=5, purchases=400)).state
    assert_frame_equal(with_held_ranks(state, state.select("user_id", "rank_order").reverse(), PLAN), state)



def test_a_user_the_held_ranks_do_not_list_keeps_its_own_rank():
    state = run(large_case(seed=9, plan=PLAN, users=60, chain=5, purchases=300)).state
    first, rest = state["user_id"][0], state["user_id"][1:]
    held = pl.DataFrame({"user_id": rest, "rank_order": pl.repeat(len(RANKS) - 1, rest.len(), dtype=pl.Int8, eager=True)})
    carried = with_held_ranks(state, held, PLAN)
    assert carried["user_id"].to_list() == state["user_id"].to_list()
    kept = carried.filter(pl.col("user_id") == first)
    assert_frame_equal(kept, state.filter(pl.col("user_id") == first))
    assert set(carried.filter(pl.col("user_id") != first)["rank"]) == {RANKS[-1]}
