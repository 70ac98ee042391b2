"""Documents made a batch of users at a time: each batch is a run of nodes with exactly the
branches its users sponsor."""

from __future__ import annotations

import polars as pl

from transforms.documents import user_batches


def test_each_batch_holds_a_run_of_nodes_in_order_and_exactly_the_branches_they_sponsor():
    # nodes 0..6 given out of order; sponsors 0, 2 and 5 hold several branches each, 6 none
    state = pl.DataFrame({"node": [4, 0, 6, 2, 1, 5, 3], "user_id": [104, 100, 106, 102, 101, 105, 103]})
    branches = pl.DataFrame(
        {"parent_node": [5, 0, 2, 0, 5, 2, 1, 3, 0], "branch": ["5a", "0a", "2a", "0b", "5b", "2b", "1a", "3a", "0c"]}
    )
    for rows, expected_nodes, expected_branches in [
        (3, [[0, 1, 2], [3, 4, 5], [6]], [{"0a", "0b", "0c", "1a", "2a", "2b"}, {"3a", "5a", "5b"}, set()]),
        (1, [[n] for n in range(7)], [{"0a", "0b", "0c"}, {"1a"}, {"2a", "2b"}, {"3a"}, set(), {"5a", "5b"}, set()]),
        (10, [list(range(7))], [set(branches["branch"])]),
    ]:
        batches = list(user_batches(state, branches, rows))
        assert [b["node"].to_list() for b, _ in batches] == expected_nodes
        assert [b["user_id"].to_list() for b, _ in batches] == [[100 + n for n in nodes] for nodes in expected_nodes]
        assert [set(sponsored["branch"]) for _, sponsored in batches] == expected_branches
        assert [sponsored.height for _, sponsored in batches] == [len(e) for e in expected_branches]
