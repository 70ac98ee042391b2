"""The referral tree: depth, refusals with the offending ids, and depth-limited sums."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from transforms.tree import NODE, ancestor_at, child_totals, descendant_totals, referral_tree


def users(links: dict[int, int | None]) -> pl.DataFrame:
    """Users from {userID: sponsor's userID}; telegramIDs are userID + 1000 so the two never mix."""
    return pl.DataFrame(
        {
            "user_id": list(links),
            "telegram_id": [u + 1000 for u in links],
            "upline_telegram_id": [None if s is None else s + 1000 for s in links.values()],
        },
        schema={"user_id": pl.Int64, "telegram_id": pl.Int64, "upline_telegram_id": pl.Int64},
    )


ROOT = 1001


@pytest.mark.parametrize(
    "links, depths",
    [
        # the root alone
        ({1: 1}, {1: 0}),
        # a chain: depth counts levels
        ({1: 1, 2: 1, 3: 2, 4: 3}, {1: 0, 2: 1, 3: 2, 4: 3}),
        # user ids out of order and sponsors listed after their referrals
        ({9: 5, 5: 1, 1: 1, 7: 9}, {1: 0, 5: 1, 9: 2, 7: 3}),
    ],
)
def test_depth(links, depths):
    tree = referral_tree(users(links), ROOT)
    assert dict(zip(tree.nodes["user_id"], tree.nodes["depth"])) == depths
    assert tree.problems == ()


def test_node_numbers_are_the_narrow_node_type():
    # node numbers fill every jump table and gather: 32 bits each, not 64, at 10M users
    tree = referral_tree(users({1: 1, 2: 1, 3: 2}), ROOT)
    assert tree.nodes.schema["node"] == NODE and tree.nodes["node"].to_list() == [0, 1, 2]


def test_a_long_chain_has_exact_depths():
    # 300 levels: the pointer jumping must land exactly, not approximately.
    links = {1: 1, **{u: u - 1 for u in range(2, 302)}}
    tree = referral_tree(users(links), ROOT)
    assert tree.nodes["depth"].to_list() == list(range(301))


@pytest.mark.parametrize(
    "links, kind, ids, detached",
    [
        # two users sponsoring each other never reach the root
        ({1: 1, 2: 1, 4: 5, 5: 4}, "cycle", (4, 5), ()),
        # a self-sponsor that is not the configured root is a cycle of one
        ({1: 1, 2: 2}, "cycle", (2,), ()),
        # users below a cycle are stranded too, and listed apart from the cycle itself
        ({1: 1, 4: 5, 5: 4, 6: 4, 7: 6}, "cycle", (4, 5), (6, 7)),
        # an upline nobody has
        ({1: 1, 2: 1, 4: 99}, "orphan", (4,), ()),
        # a null upline is an orphan too, with its downline stranded
        ({1: 1, 4: None, 8: 4}, "orphan", (4,), (8,)),
        # a downline four levels deep below an orphan, and below a cycle: each stranded user is
        # traced to the orphan or cycle it hangs from, however far down it sits
        ({1: 1, 4: 99, 5: 4, 6: 5, 7: 6, 8: 7}, "orphan", (4,), (5, 6, 7, 8)),
        ({1: 1, 4: 5, 5: 4, 6: 4, 7: 6, 8: 7, 9: 8}, "cycle", (4, 5), (6, 7, 8, 9)),
    ],
)
def test_bad_structure_is_reported_with_ids(links, kind, ids, detached):
    tree = referral_tree(users(links), ROOT)
    [found] = [p for p in tree.problems if p.kind == kind]
    assert (found.ids, found.detached_ids) == (ids, detached)
    assert set(tree.nodes["user_id"]).isdisjoint(set(ids) | set(detached))


def test_no_root_and_several_roots():
    assert [p.kind for p in referral_tree(users({2: 3, 3: 2}), ROOT).problems] == ["no_root"]
    several = referral_tree(users({1: 1, 2: 2, 3: 1}), None).problems
    assert [(p.kind, p.ids) for p in several] == [("several_roots", (1, 2))]
    # unconfigured, the one self-sponsor is the root
    assert referral_tree(users({1: 1, 2: 1}), None).root_node == 0


# A tree used below:     1
#                      /   \
#                     2     3
#                    / \
#                   4   5
#                   |
#                   6
SHAPE = {1: 1, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4}
VALUES = {1: 1, 2: 10, 3: 100, 4: 1000, 5: 10000, 6: 100000}


@pytest.mark.parametrize(
    "max_depth, expected",
    [
        # unlimited: everything below, never the node itself
        (None, {1: 111110, 2: 111000, 3: 0, 4: 100000, 5: 0, 6: 0}),
        # one level: direct referrals only
        (1, {1: 110, 2: 11000, 3: 0, 4: 100000, 5: 0, 6: 0}),
        # two levels: user 6 (three below the root) is cut from the root only
        (2, {1: 11110, 2: 111000, 3: 0, 4: 100000, 5: 0, 6: 0}),
    ],
)
def test_descendant_totals(max_depth, expected):
    tree = referral_tree(users(SHAPE), ROOT)
    values = pl.DataFrame({"v": [VALUES[u] for u in tree.nodes["user_id"]]})
    got = descendant_totals(tree, values, max_depth)
    assert_frame_equal(got, pl.DataFrame({"v": [expected[u] for u in tree.nodes["user_id"]]}))


def test_child_totals_skip_the_root_itself():
    tree = referral_tree(users(SHAPE), ROOT)
    values = pl.DataFrame({"v": [VALUES[u] for u in tree.nodes["user_id"]]})
    got = dict(zip(tree.nodes["user_id"], child_totals(tree, values)["v"]))
    assert got == {1: 110, 2: 11000, 3: 0, 4: 100000, 5: 0, 6: 0}


def test_a_root_setting_that_names_another_user_is_refused_naming_the_self_sponsor():
    # User 1 sponsors itself (the platform's root); the setting names user 2, below it. Before,
    # the real root was reported as a "cycle".
    tree = referral_tree(users({1: 1, 2: 1, 3: 2}), 1002)
    assert [(p.kind, p.ids) for p in tree.problems] == [("root_setting", (1,))]
    assert tree.problems[0].detail == (
        "MLM_ROOT_TELEGRAM_ID 1002 is userID 2, whose upline is not itself; set it to the self-sponsored user's telegramID, or unset it"
    )
    assert tree.nodes.height == 0


def test_a_self_sponsor_beside_a_configured_root_without_a_sponsor_is_a_cycle():
    # The configured root (user 3) has no upline at all: it is a root, the setting agrees with
    # the platform, and user 8, sponsoring itself, is a loop that never reaches it (found by
    # the reference comparison; it was reported as a root_setting).
    tree = referral_tree(users({3: None, 8: 8, 13: 3}), 1003)
    assert [(p.kind, p.ids) for p in tree.problems] == [("cycle", (8,))]


def test_ancestor_at_names_each_nodes_ancestor_that_many_levels_up():
    tree = referral_tree(users(SHAPE), ROOT)
    user_of = dict(enumerate(tree.nodes["user_id"]))
    for distance, expected in [(0, {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6}), (1, {1: None, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4}), (3, {1: None, 2: None, 3: None, 4: None, 5: None, 6: 1})]:
        found = ancestor_at(tree, distance)
        assert found.name == "ancestor"
        assert {user_of[n]: (None if a is None else user_of[a]) for n, a in zip(tree.nodes["node"], found)} == expected
