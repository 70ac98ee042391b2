"""What an operator reads when input is refused, word for word: a plan file's problems, a bad
row's problem line, a refused tree. The texts below are written out by hand from the rules the
messages follow (cut at 20 ids, 10 problems, 60 characters), so a changed word, limit or key fails.
"""

from __future__ import annotations

import copy
import tomllib

import polars as pl
import pytest

from flows.config import DEFAULT_PLAN
from transforms.plan import PlanError, plan_from_mapping
from transforms.problems import InputRejected, Problem, problem
from transforms.tree import referral_tree

PLAN_KEYS = "['active_partners_scope', 'leg_cap_ratio', 'max_depth', 'min_monthly_pv', 'pioneer_min_purchase', 'pioneer_slots', 'promote_only_active', 'ranks', 'root_takes_no_rank_checks', 'version']"
RANK_KEYS = "['active_partners', 'name', 'personal_volume', 'rate', 'team_volume']"
SHARED = "shared_telegram_id: several users hold one telegramID, so whose sponsor it names cannot be told"


def _refused(change) -> PlanError:
    data = copy.deepcopy(tomllib.loads(DEFAULT_PLAN.read_text()))  # ranks: start, builder, growth, leadership, director
    change(data)
    with pytest.raises(PlanError) as refused:
        plan_from_mapping(data)
    return refused.value


@pytest.mark.parametrize(
    "change, text, fields",
    [
        # missing fields are said once per table, in the place of the table's first
        (
            lambda d: [d.pop("min_monthly_pv"), d.pop("leg_cap_ratio"), d["ranks"][1].pop("rate"), d["ranks"][1].pop("team_volume")],
            "plan.ranks[1]: missing field(s) ['rate', 'team_volume']; plan: missing field(s) ['min_monthly_pv', 'leg_cap_ratio']",
            ("plan.ranks[1].rate", "plan.ranks[1].team_volume", "plan.min_monthly_pv", "plan.leg_cap_ratio"),
        ),
        (lambda d: d.update(ranks=[]), "plan.ranks: must hold at least 1 item(s), got []", ("plan.ranks",)),
        # a rank's field is located by its rank's name too...
        (
            lambda d: d["ranks"][2].update(team_volume="1.00"),
            "plan.ranks[2].team_volume (growth): requires less than the rank below it (builder) (ranks are listed in ascending order of their requirements), got '1.00'",
            ("plan.ranks[2].team_volume",),
        ),
        (lambda d: d["ranks"][3].update(colour=1), f"plan.ranks[3].colour (leadership): unknown field, got 1; known fields are {RANK_KEYS}", ("plan.ranks[3].colour",)),
        # ...unless the name is what is wrong, or is not a rank name
        (
            lambda d: d["ranks"][2].update(name="Growth!", colour=1),
            f"plan.ranks[2].name: string should match pattern '^[a-z][a-z0-9_]*$', got 'Growth!'; plan.ranks[2].colour: unknown field, got 1; known fields are {RANK_KEYS}",
            ("plan.ranks[2].name", "plan.ranks[2].colour"),
        ),
        # a value is shown as its repr up to 60 characters: a 58-letter text's repr is 60...
        (lambda d: d.update(colour="x" * 58), f"plan.colour: unknown field, got '{'x' * 58}'; known fields are {PLAN_KEYS}", ("plan.colour",)),
        # ...one more letter is cut, with the text's length; a long list is cut without one
        (lambda d: d.update(colour="x" * 59), f"plan.colour: unknown field, got '{'x' * 59}... (59 characters); known fields are {PLAN_KEYS}", ("plan.colour",)),
        (lambda d: d.update(colour=[1] * 30), f"plan.colour: unknown field, got {('[' + '1, ' * 30)[:60]}...; known fields are {PLAN_KEYS}", ("plan.colour",)),
    ],
    ids=["missing", "too short", "rank order", "rank field", "bad rank name", "60 characters", "61 characters", "long list"],
)
def test_a_refused_plan_says_exactly_what_and_where(change, text, fields):
    refused = _refused(change)
    assert (str(refused), refused.fields) == (text, fields)


def test_a_plan_with_more_than_ten_problems_shows_ten_and_counts_the_rest_but_names_every_field():
    refused = _refused(lambda d: d.update({f"k{i}": i for i in range(12)}))
    unknown = [f"plan.k{i}: unknown field, got {i}; known fields are {PLAN_KEYS}" for i in range(10)]
    assert str(refused) == "; ".join(unknown + ["and 2 more"])
    assert refused.fields == tuple(f"plan.k{i}" for i in range(12))
    ten = _refused(lambda d: d.update({f"k{i}": i for i in range(10)}))
    assert str(ten) == "; ".join(unknown)


def test_a_problem_names_twenty_ids_and_counts_the_rest():
    twenty = problem("orphan", range(20, 0, -1), "upline 7", detached_ids=range(40, 20, -1))
    assert twenty == Problem("orphan", tuple(range(1, 21)), "upline 7", tuple(range(21, 41)))  # sorted, ints
    ids, below = ", ".join(map(str, range(1, 21))), ", ".join(map(str, range(21, 41)))
    assert twenty.describe() == f"orphan: upline matches no user's telegramID (userID {ids}); upline 7; unreachable below them: userID {below}"
    more = problem("orphan", range(1, 23), detached_ids=range(30, 51))
    below = ", ".join(map(str, range(30, 50)))
    assert more.describe() == f"orphan: upline matches no user's telegramID (userID {ids} and 2 more); unreachable below them: userID {below} and 1 more"
    assert more.as_dict() == {"kind": "orphan", "ids": list(range(1, 23)), "detached_ids": list(range(30, 51)), "detail": ""}
    assert problem("bad_price", [12]).describe() == "bad_price: packPrice is null or negative (purchaseID 12)"
    assert problem("no_root", []).describe() == "no_root: no root user: neither the configured default referrer nor a single self-sponsored user exists"


def test_input_rejected_lists_every_problem_on_its_own_line():
    rejected = InputRejected([problem("bad_time", [3, 1]), problem("cycle", [9], "via 8")])
    assert str(rejected) == "input rejected:\n  - bad_time: createdAt is null (purchaseID 1, 3)\n  - cycle: sponsor chain loops and never reaches the root (userID 9); via 8"
    assert rejected.kinds() == {"bad_time", "cycle"}
    with pytest.raises(ValueError, match=r"^unknown problem kind 'typo'$"):
        problem("typo", [1])


def _users(links: dict[int, int], telegram: dict[int, int] | None = None) -> pl.DataFrame:
    """Users from {userID: sponsor's userID}; telegramIDs are userID + 1000 unless given."""
    telegram = telegram or {u: u + 1000 for u in links}
    return pl.DataFrame(
        {"user_id": list(links), "telegram_id": [telegram[u] for u in links], "upline_telegram_id": [telegram[s] for s in links.values()]},
        schema={"user_id": pl.Int64, "telegram_id": pl.Int64, "upline_telegram_id": pl.Int64},
    )


REFUSED_NODES = {"node": pl.UInt32, "user_id": pl.Int64, "telegram_id": pl.Int64, "parent_node": pl.UInt32, "is_root": pl.Boolean, "depth": pl.Int32}


@pytest.mark.parametrize(
    "links, root, found",
    [
        ({2: 3, 3: 2}, 1001, problem("no_root", [], "looked for telegramID 1001 among 2 users")),
        ({2: 3, 3: 2, 4: 2}, None, problem("no_root", [], "looked for a self-sponsored user among 3 users")),
        ({1: 1, 2: 2, 3: 1}, None, problem("several_roots", [1, 2], "set MLM_ROOT_TELEGRAM_ID to the platform's default referrer")),
    ],
    ids=["configured root missing", "no self-sponsor", "two self-sponsors"],
)
def test_a_tree_without_one_root_is_refused_with_no_users(links, root, found):
    tree = referral_tree(_users(links), root)
    assert tree.problems == (found,)
    assert (dict(tree.nodes.schema), tree.nodes.height, tree.root_node, tree.ancestors) == (REFUSED_NODES, 0, 0, ())


def test_shared_telegram_ids_name_twenty_and_count_the_rest():
    # 22 pairs of users, pair k holding telegramID 2001 + k, all below the root; user 99 hangs
    # below the first pair's telegramID, so it is unreachable
    pairs = {10 + 2 * k + j: 2001 + k for k in range(22) for j in range(2)}
    telegram = {1: 1001, **pairs, 99: 1099}
    links = {1: 1, **{u: 1 for u in pairs}, 99: 10}
    [shared] = referral_tree(_users(links, telegram), 1001).problems
    assert shared == problem("shared_telegram_id", pairs, "telegramID " + ", ".join(map(str, range(2001, 2021))) + " and 2 more", detached_ids=[99])
    assert shared.describe().startswith(f"{SHARED} (userID {', '.join(map(str, range(10, 30)))} and 24 more); telegramID 2001, ")
