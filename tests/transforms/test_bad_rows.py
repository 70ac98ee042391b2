"""Pure Polars: a telegramID held by several users in the tree, pioneer keys of the wrong shape,
the numbering of pioneers around quarantined ones, documents that are no object, unknown ranks,
bad purchases, stored grants beyond the slots, and a quarantine that cannot hold a pioneer out."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import polars as pl
import pytest

from tests.transforms.reference import Purchase, User
from tests.transforms.test_reference import DEFAULT_PLAN, Case, inputs_of, run
from transforms.pioneers import held_number_problems, pioneer_problems, pioneers
from transforms.problems import InputRejected
from transforms.recompute import CANDIDATE_COLUMNS, PURCHASE_PROBLEM_COLUMNS, USER_INPUT_COLUMNS
from transforms.tree import referral_tree


def _tree_users(rows: list[tuple[int, int, int]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"user_id": pl.Int64, "telegram_id": pl.Int64, "upline_telegram_id": pl.Int64}, orient="row")


def test_a_shared_telegram_id_names_its_users_apart_from_orphans_and_cycles():
    users = _tree_users(
        [
            (1, 100, 100),  # the root
            (2, 200, 100),
            (3, 200, 100),  # shares 200 with user 2
            (4, 400, 200),  # below the shared telegramID: its sponsor cannot be told
            (5, 500, 400),
            (6, 600, 777),  # an orphan
            (7, 700, 800),  # 7 and 8: a cycle
            (8, 800, 700),
            (9, 900, 100),
        ]
    )
    tree = referral_tree(users, None)
    found = {p.kind: (p.ids, p.detached_ids) for p in tree.problems}
    assert found == {"shared_telegram_id": ((2, 3), (4, 5)), "orphan": ((6,), ()), "cycle": ((7, 8), ())}
    assert sorted(tree.nodes["user_id"]) == [1, 9]
    # one shared telegramID, named alone (the count of more is for over twenty)
    assert [p.detail for p in tree.problems if p.kind == "shared_telegram_id"] == ["telegramID 200"]


def test_a_shared_root_telegram_id_computes_nothing():
    users = _tree_users([(1, 100, 100), (2, 100, 300), (3, 300, 100)])
    for configured in (None, 100):
        tree = referral_tree(users, configured)
        assert tree.size == 0
        assert [(p.kind, p.ids) for p in tree.problems] == [("shared_telegram_id", (1, 2))]
        assert tree.problems[0].detail == "telegramID 100, the root's: nothing can be computed until only one user holds it"


def _users(rows: list[dict]) -> pl.DataFrame:
    columns = {name: [row.get(name) for row in rows] for name in USER_INPUT_COLUMNS}
    return pl.DataFrame(columns, schema=USER_INPUT_COLUMNS)


def _grant(user_id: int, number: int | None, granted_at: str) -> dict:
    return {"user_id": user_id, "has_pioneer_bonus": True, "pioneer_granted_at": granted_at, "pioneer_purchase_id": 1000 + user_id, "pioneer_number": number}


CANDIDATES = pl.DataFrame(
    [(5, 55, datetime(2025, 10, 1)), (6, 66, datetime(2025, 10, 2)), (7, 77, datetime(2025, 9, 1))], schema=CANDIDATE_COLUMNS, orient="row"
)


def test_held_pioneers_keep_their_numbers_and_the_others_take_the_rest_in_grant_order():
    users = _users([_grant(1, 3, "2025-10-09T00:00:00"), _grant(2, 1, "2025-10-08T00:00:00"), _grant(3, 2, "2025-08-01T00:00:00")])
    held = pl.Series([2, 7])  # user 2 keeps 1; user 7, a candidate, takes no slot
    granted = pioneers(users, CANDIDATES, slots=10, held_out=held)
    numbers = dict(granted.select("user_id", "pioneer_number").iter_rows())
    # by time without user 2: 3 (08-01), 5 (10-01), 6 (10-02), 1 (10-09) take 2, 3, 4, 5
    assert numbers == {2: 1, 3: 2, 5: 3, 6: 4, 1: 5}
    assert held_number_problems(granted, users, held) == []


def test_a_held_pioneer_number_that_cannot_be_kept_is_a_problem():
    users = _users([_grant(1, 9, "2025-10-09T00:00:00"), _grant(2, None, "2025-10-08T00:00:00"), _grant(3, 1, "2025-08-01T00:00:00")])
    held = pl.Series([1, 2])
    granted = pioneers(users, CANDIDATES.head(0), slots=10, held_out=held)
    assert sorted(granted["pioneer_number"].drop_nulls()) == [1, 9] and granted.height == 3
    (found,) = held_number_problems(granted, users, held)
    assert (found.kind, found.ids) == ("held_pioneer_number", (1, 2))
    assert "userID 1: 9, userID 2: none" in found.detail


def test_wrong_pioneer_key_shapes_are_one_problem_per_description():
    bad_flag = "mlmStatus.hasPioneerBonus is a string, not true or false"
    users = _users(
        [
            {"user_id": 1, "bad_pioneer_keys": bad_flag},
            {"user_id": 2, "bad_pioneer_keys": bad_flag},
            {"user_id": 3, "pioneer_granted_at": "yesterday"},  # a string, but no time: wherever it is
            {"user_id": 4},
        ]
    )
    found = [(p.kind, p.ids, p.detail) for p in pioneer_problems(users, slots=10)]
    assert found == [("bad_document", (1, 2), bad_flag), ("bad_document", (3,), "mlmStatus.pioneerGrantedAt is not an ISO time")]


def _case_inputs():
    """A root (1) with referrals 2..6 and one purchase each, as the extract delivers them."""
    people = [User(1, 100, 100)] + [User(u, 100 * u, 100) for u in range(2, 7)]
    bought = [Purchase(10 + u, u, 25_000, datetime(2025, 10, 1, u)) for u in range(1, 7)]
    case = Case(people, bought, DEFAULT_PLAN, None, datetime(2025, 10, 17), "2025-10")
    return inputs_of(case), case


def test_documents_that_are_no_object_unknown_ranks_and_bad_purchases_are_each_named():
    inputs, case = _case_inputs()
    users = inputs.users.with_columns(
        mlm_status_type=pl.when(pl.col("user_id") == 2).then(pl.lit("array")).otherwise(pl.col("mlm_status_type")),
        mlm_volumes_type=pl.when(pl.col("user_id").is_in([3, 4])).then(pl.lit("string")).when(pl.col("user_id") == 5).then(pl.lit("number")).otherwise(None),
        total_volume_type=pl.when(pl.col("user_id") == 4).then(pl.lit("object")).otherwise(None),  # an object is fine
        previous_rank=pl.when(pl.col("user_id") == 6).then(pl.lit("emperor")).otherwise(pl.col("previous_rank")),
    )
    bad_purchases = pl.DataFrame(
        [(90, 2, "bad_price"), (91, 77, "unknown_user"), (92, 3, "bad_time"), (93, 3, "bad_price")], schema=PURCHASE_PROBLEM_COLUMNS, orient="row"
    )
    inputs = dataclasses.replace(inputs, users=users, purchase_problems=bad_purchases)
    with pytest.raises(InputRejected) as refused:
        run(case, inputs)
    found = [(p.kind, p.ids, p.detail) for p in refused.value.problems]
    assert found == [
        ("unknown_user", (91,), ""),
        ("bad_price", (90, 93), ""),
        ("bad_time", (92,), ""),
        ("bad_document", (2,), "mlmStatus holds JSON array, not an object"),
        ("bad_document", (3, 4, 5), "mlmVolumes holds JSON number, string, not an object"),
        ("bad_rank", (6,), f"ranks ['emperor'] are not in plan {case.plan.version} ({case.plan.rank_names})"),
    ]

    quarantined = run(case, inputs, quarantine=True)
    # the users named are held out; the bad purchases are not counted but their buyers are written
    assert sorted(quarantined.state["user_id"]) == [1]
    assert [p.kind for p in quarantined.problems] == [kind for kind, _, _ in found]


def test_stored_pioneers_beyond_the_slots_are_refused():
    inputs, case = _case_inputs()
    granted = pl.col("user_id").is_in([2, 3])
    users = inputs.users.with_columns(
        has_pioneer_bonus=granted, pioneer_granted_at=pl.when(granted).then(pl.lit("2025-09-01T00:00:00")), pioneer_purchase_id=pl.when(granted).then(pl.col("user_id") + 10)
    )
    inputs = dataclasses.replace(inputs, users=users)
    plan = case.plan.with_overrides({"pioneer_slots": 1})
    with pytest.raises(InputRejected) as refused:
        run(dataclasses.replace(case, plan=plan), inputs)
    (overflow,) = [p for p in refused.value.problems if p.kind == "pioneer_overflow"]
    assert overflow.ids == (2, 3)
    assert overflow.detail == "2 users hold hasPioneerBonus but the plan has 1 slots; grants are never taken away, so a person must decide"
    # at exactly the slots, nothing is wrong
    assert run(dataclasses.replace(case, plan=case.plan.with_overrides({"pioneer_slots": 2})), inputs).problems == ()


def test_a_quarantined_pioneer_whose_number_cannot_be_kept_refuses_the_run_with_every_problem():
    inputs, case = _case_inputs()
    is_two = pl.col("user_id") == 2
    users = inputs.users.with_columns(
        # user 2 holds a grant without a number and has a bad mlmVolumes: quarantine would hold it out
        has_pioneer_bonus=is_two, pioneer_granted_at=pl.when(is_two).then(pl.lit("2025-09-01T00:00:00")), pioneer_purchase_id=pl.when(is_two).then(pl.lit(12, pl.Int64)),
        mlm_volumes_type=pl.when(is_two).then(pl.lit("array")).otherwise(None),
    )
    with pytest.raises(InputRejected) as refused:
        run(case, dataclasses.replace(inputs, users=users), quarantine=True)
    assert [(p.kind, p.ids) for p in refused.value.problems] == [("bad_document", (2,)), ("held_pioneer_number", (2,))]
