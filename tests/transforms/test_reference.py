"""The vectorized recompute agrees with the plain-Python reference, user by user, on random trees.

Random small trees (sometimes deep chains, so a small depth limit matters), random purchases on
both sides of the cut-off, random stored ranks and pioneer grants, plans scaled down so ranks are
reached. The inputs are built the way db/extract delivers them (purchases aggregated per user and
month before the cut-off; one pioneer candidate per user). Refusals (cycles, orphans) are checked
against the reference's own walk of each sponsor chain.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.config import load_plan
from tests.transforms import reference
from tests.transforms.reference import Purchase, User
from transforms.documents import Provenance
from transforms.plan import Plan
from transforms.problems import InputRejected
from transforms.recompute import (
    CANDIDATE_COLUMNS,
    MONTHLY_VOLUME_COLUMNS,
    PURCHASE_PROBLEM_COLUMNS,
    USER_INPUT_COLUMNS,
    Inputs,
    Recomputed,
    recompute,
)

DEFAULT_PLAN = load_plan()
RANK_NAMES = DEFAULT_PLAN.rank_names
# Prices around the scaled thresholds below: 0, just under/at/over the 20.00 activity minimum,
# around the pioneer minimums, and one large purchase.
PRICES_CENTS = [0, 1, 500, 1999, 2000, 2001, 4999, 5000, 9999, 10000, 10001, 25000, 50000, 100000]
# Columns of Recomputed.state the reference defines, compared user by user.
COMPARED = [
    "personal_volume_total_cents",
    "monthly_pv_cents",
    "last_active_month",
    "is_active",
    "full_volume_cents",
    "active_partners",
    "direct_referrals",
    "qualified_rank",
    "rank",
    "rank_rose",
    "pioneer_number",
    "pioneer_purchase_id",
    "required_for_next_rank_cents",
    "cap_limit_cents",
    "qualifying_volume_cents",
    "gap_cents",
]


@dataclass(frozen=True)
class Case:
    """One run: the source rows, the plan, the root setting and the cut-off."""

    users: list[User]
    purchases: list[Purchase]
    plan: Plan
    root_telegram_id: int | None
    as_of: datetime  # naive UTC
    period: str
    # userID -> how the stored pioneerGrantedAt is written (default: naive ISO of the User's time)
    grant_texts: dict[int, str] = field(default_factory=dict)


# --- inputs as db/extract delivers them -------------------------------------------------------


def _month_key(instant: datetime) -> str | date:
    """A purchase's month as the extract labels it: its first day, or ``YYYY-MM`` text."""
    if MONTHLY_VOLUME_COLUMNS["month"] == pl.Date:
        return date(instant.year, instant.month, 1)
    return reference.month_of(instant)


def inputs_of(case: Case) -> Inputs:
    """The recompute's inputs for ``case``, shaped like db/extract's frames."""
    users = pl.DataFrame(
        {
            "user_id": [u.user_id for u in case.users],
            "telegram_id": [u.telegram_id for u in case.users],
            "upline_telegram_id": [u.upline_telegram_id for u in case.users],
            "previous_rank": [u.previous_rank for u in case.users],
            "has_pioneer_bonus": [True if u.has_pioneer_bonus else None for u in case.users],
            "pioneer_granted_at": [
                case.grant_texts.get(u.user_id, u.pioneer_granted_at.isoformat() if u.pioneer_granted_at else None)
                if u.has_pioneer_bonus
                else None
                for u in case.users
            ],
            "pioneer_purchase_id": [u.pioneer_purchase_id if u.has_pioneer_bonus else None for u in case.users],
            "pioneer_number": [None] * len(case.users),
            "bad_pioneer_keys": [None] * len(case.users),
            "mlm_status_type": ["object" if u.has_pioneer_bonus else None for u in case.users],
            "mlm_volumes_type": [None] * len(case.users),
            "total_volume_type": [None] * len(case.users),
            "first_name": [f"user {u.user_id}" for u in case.users],
            "stored_fingerprint": [None] * len(case.users),
        },
        schema=USER_INPUT_COLUMNS,
    )
    counted = [p for p in case.purchases if p.created_at < case.as_of]
    per_month: dict[tuple[int, str | date], int] = {}
    for p in counted:
        key = (p.user_id, _month_key(p.created_at))
        per_month[key] = per_month.get(key, 0) + p.price_cents
    monthly = pl.DataFrame(
        [(u, m, cents) for (u, m), cents in sorted(per_month.items(), reverse=True)],
        schema=MONTHLY_VOLUME_COLUMNS,
        orient="row",
    )
    first: dict[int, Purchase] = {}
    for p in sorted(counted, key=lambda p: (p.created_at, p.purchase_id)):
        if p.price_cents >= case.plan.pioneer_min_purchase_cents:
            first.setdefault(p.user_id, p)
    # In userID order, as the extract's DISTINCT ON delivers them: not in purchase order.
    candidates = pl.DataFrame(
        [(p.user_id, p.purchase_id, p.created_at) for _, p in sorted(first.items())],
        schema=CANDIDATE_COLUMNS,
        orient="row",
    )
    problems = pl.DataFrame(schema=PURCHASE_PROBLEM_COLUMNS)
    return Inputs(users=users, monthly_volumes=monthly, pioneer_candidates=candidates, purchase_problems=problems)


def run(case: Case, inputs: Inputs | None = None, **options) -> Recomputed:
    """The recompute of ``case`` (raises InputRejected on bad input); ``inputs`` in place of the
    case's own (a test that alters what the extract delivered), ``options`` for ``recompute``."""
    as_of = case.as_of.replace(tzinfo=timezone.utc)
    provenance = Provenance(run_id=7, plan_version=case.plan.version, as_of=as_of, calculated_at=as_of)
    return recompute(
        inputs or inputs_of(case), case.plan, period=case.period, root_telegram_id=case.root_telegram_id, provenance=provenance, **options
    )


def expected(case: Case) -> dict[int, reference.Expected]:
    """The reference's values for ``case``: one per userID."""
    return reference.expected_state(
        case.users,
        case.purchases,
        case.plan,
        root_telegram_id=case.root_telegram_id,
        as_of=case.as_of,
        period=case.period,
    )


# --- strategies -------------------------------------------------------------------------------


def _month_start(year: int, month: int) -> datetime:
    return datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1)


@st.composite
def plans(draw) -> Plan:
    """The default plan with thresholds scaled down so small trees reach ranks."""
    ranks = [
        {"name": "start", "rate": "0.04", "personal_volume": "0", "team_volume": "0", "active_partners": 0},
        {
            "name": "builder",
            "rate": "0.08",
            "personal_volume": draw(st.sampled_from(["0", "10.00", "20.00"])),
            "team_volume": draw(st.sampled_from(["10.00", "50.01", "100.00"])),
            "active_partners": draw(st.integers(0, 2)),
        },
        {
            "name": "growth",
            "rate": "0.12",
            "personal_volume": draw(st.sampled_from(["20.00", "50.00"])),
            "team_volume": draw(st.sampled_from(["100.00", "150.00", "333.33"])),
            "active_partners": draw(st.integers(1, 2)),
        },
        {
            "name": "leadership",
            "rate": "0.15",
            "personal_volume": draw(st.sampled_from(["50.00", "100.00"])),
            "team_volume": draw(st.sampled_from(["300.00", "500.01"])),
            "active_partners": draw(st.integers(1, 3)),
        },
        {
            "name": "director",
            "rate": "0.18",
            "personal_volume": draw(st.sampled_from(["100.00", "200.00"])),
            "team_volume": draw(st.sampled_from(["600.00", "1000.00"])),
            "active_partners": draw(st.integers(2, 4)),
        },
    ]
    # A plan's requirements never go down from one rank to the next (plan.py refuses that).
    for lower, higher in zip(ranks, ranks[1:]):
        higher["active_partners"] = max(higher["active_partners"], lower["active_partners"])
        for field in ("personal_volume", "team_volume"):
            higher[field] = max(higher[field], lower[field], key=Decimal)
    return DEFAULT_PLAN.with_overrides(
        {
            "version": "scaled-test",
            "ranks": ranks,
            "min_monthly_pv": "20.00",
            "leg_cap_ratio": draw(st.sampled_from(["0.5", "0.5", "1", "0.33"])),
            "max_depth": draw(st.sampled_from([None, 1, 2, 3, 50])),
            "active_partners_scope": draw(st.sampled_from(["downline", "direct"])),
            "pioneer_slots": draw(st.integers(0, 5)),
            "pioneer_min_purchase": draw(st.sampled_from(["50.00", "100.00"])),
            "promote_only_active": draw(st.sampled_from([True, True, False])),
            "root_takes_no_rank_checks": draw(st.sampled_from([True, True, False])),
        }
    )


@st.composite
def sponsor_indexes(draw, max_users: int = 40) -> list[int]:
    """Position i's sponsor is an earlier position (0 is the root), so there is no cycle. Shapes:
    random; chain (most users below the previous one: deep); shallow (every sponsor among the first
    few positions, so the tree is exactly as deep as a small depth limit, or one level more)."""
    n = draw(st.integers(0, max_users))
    shape = draw(st.sampled_from(["random", "chain", "shallow"]))
    width = draw(st.integers(1, 4))
    links = []
    for i in range(1, n + 1):
        if shape == "chain" and draw(st.integers(0, 3)) > 0:
            links.append(i - 1)
        elif shape == "shallow":
            links.append(draw(st.integers(0, min(i, width) - 1)))
        else:
            links.append(draw(st.integers(0, i - 1)))
    return links


@st.composite
def cases(draw, plan_strategy=plans(), max_users: int = 40) -> Case:
    """A valid case: a tree of 1 + up to ``max_users`` users, up to 80 purchases over the period,
    the month before and the month after (some after the cut-off), stored ranks and grants."""
    plan = draw(plan_strategy)
    links = draw(sponsor_indexes(max_users))
    size = len(links) + 1
    # userIDs and telegramIDs in orders unrelated to the tree, and never equal to each other.
    user_ids = [3 + 5 * i for i in draw(st.permutations(range(size)))]
    telegram_ids = [1_000_000_000 + 7 * i for i in draw(st.permutations(range(size)))]
    # Mostly no stored rank, so that promotions happen often enough to be checked.
    stored_ranks = st.sampled_from([None, None, None, None, RANK_NAMES[0], *RANK_NAMES])
    ranks = draw(st.lists(stored_ranks, min_size=size, max_size=size))

    year, month = draw(st.sampled_from([(2025, 1), (2025, 3), (2024, 12), (2025, 10)]))
    period_start, period_end = _month_start(year, month), _month_start(year, month + 1)
    period = reference.month_of(period_start)
    # Nightly: somewhere in the month; month-end close/backfill: exactly at its end.
    seconds_in = int((period_end - period_start).total_seconds())
    as_of = draw(
        st.one_of(
            st.just(period_end),
            st.integers(0, seconds_in - 1).map(lambda s: period_start + timedelta(seconds=s)),
        )
    )
    window_start, window_end = _month_start(year, month - 1), _month_start(year, month + 2)
    window = int((window_end - window_start).total_seconds())
    hot = window_start + timedelta(seconds=draw(st.integers(0, window - 1)))  # a shared instant: ties
    counted_in_period = max(1, int((as_of - period_start).total_seconds()))
    specials = [as_of, as_of - timedelta(microseconds=1), period_start, period_start - timedelta(microseconds=1), hot]
    times = st.one_of(
        st.integers(0, window - 1).map(lambda s: window_start + timedelta(seconds=s)),
        # Inside the period before the cut-off, where purchases make users active.
        st.integers(0, counted_in_period - 1).map(lambda s: period_start + timedelta(seconds=s)),
        st.sampled_from(specials),
    )
    if draw(st.integers(0, 3)) == 0:
        # A coarse clock: purchases share a few instants, so pioneers tie on time at the slot boundary.
        times = st.sampled_from(specials)
    # Buyers: anyone, or a few heavy buyers whose volume lifts their uplines to ranks.
    heavy = draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=6))
    buyers = st.one_of(st.integers(0, size - 1), st.sampled_from(heavy))
    count = draw(st.integers(0, 80))  # drawn first: hypothesis's own list sizes stay small
    rows = draw(st.lists(st.tuples(buyers, st.sampled_from(PRICES_CENTS), times), min_size=count, max_size=count))
    purchase_ids = [100 + 3 * i for i in draw(st.permutations(range(len(rows))))]
    purchases = [
        Purchase(purchase_id=pid, user_id=user_ids[who], price_cents=price, created_at=at)
        for pid, (who, price, at) in zip(purchase_ids, rows)
    ]

    # Stored grants: never more than the slots (more is a refusal, tested elsewhere). Only the
    # first may lack its time and purchase (then they come from the user's qualifying purchase).
    granted = draw(st.lists(st.integers(0, size - 1), unique=True, max_size=plan.pioneer_slots))
    grants, grant_texts = {}, {}
    for k, who in enumerate(granted):
        at = draw(times) if k else draw(st.one_of(st.none(), times))
        pid = 900_000 + k if k else draw(st.sampled_from([None, 900_000]))
        grants[who] = (at, pid)
        if at is not None and draw(st.booleans()):
            # Written with an offset, as another writer might: the same instant.
            grant_texts[user_ids[who]] = (at + timedelta(hours=3)).isoformat() + "+03:00"

    users = []
    for i in range(size):
        at, pid = grants.get(i, (None, None))
        users.append(
            User(
                user_id=user_ids[i],
                telegram_id=telegram_ids[i],
                upline_telegram_id=telegram_ids[0] if i == 0 else telegram_ids[links[i - 1]],
                previous_rank=ranks[i],
                has_pioneer_bonus=i in grants,
                pioneer_granted_at=at,
                pioneer_purchase_id=pid,
            )
        )
    root_telegram_id = draw(st.sampled_from([telegram_ids[0], None]))
    if root_telegram_id is not None and draw(st.booleans()):
        # A configured root is the root whatever its own upline says (here: none).
        users[0] = dataclasses.replace(users[0], upline_telegram_id=None)
    return Case(users, purchases, plan, root_telegram_id, as_of, period, grant_texts)


# --- comparison -------------------------------------------------------------------------------


def _money(cents: int) -> Decimal:
    return Decimal(cents) / 100


def _branches_json(ref: reference.Expected) -> list[dict]:
    cap = ref.cap_limit_cents
    return [
        {
            "referralTelegramId": b.referral_telegram_id,
            "referralName": f"user {b.referral_user_id}",
            "referralUserId": b.referral_user_id,
            "fullVolume": _money(b.branch_cents),
            "cappedVolume": _money(min(b.branch_cents, cap)),
            "isCapped": b.branch_cents > cap,
        }
        for b in ref.branches
    ]


def disagreements(case: Case, result: Recomputed) -> list[str]:
    """Every value where the recompute and the reference differ, one line each."""
    want = expected(case)
    found = []
    state = {row["user_id"]: row for row in result.state.iter_rows(named=True)}
    docs = {row["user_id"]: row for row in result.documents.iter_rows(named=True)}
    if sorted(state) != sorted(want) or sorted(docs) != sorted(want):
        return [f"users: state {sorted(state)} documents {sorted(docs)} expected {sorted(want)}"]
    for user_id, ref in want.items():
        row = state[user_id]
        for column in COMPARED:
            if row[column] != getattr(ref, column):
                found.append(f"user {user_id} {column}: recompute {row[column]!r} reference {getattr(ref, column)!r}")
        got_at = row["pioneer_granted_at"]
        got_at = datetime.fromisoformat(got_at) if got_at is not None else None
        if got_at != ref.pioneer_granted_at:
            found.append(f"user {user_id} pioneer_granted_at: recompute {got_at} reference {ref.pioneer_granted_at}")
        total = json.loads(docs[user_id]["total_volume"], parse_float=Decimal)
        document_values = {
            "branches": (total["branches"], _branches_json(ref)),
            "fullVolume": (total["fullVolume"], _money(ref.full_volume_cents)),
            "qualifyingVolume": (total["qualifyingVolume"], _money(ref.qualifying_volume_cents)),
            "requiredForNextRank": (total["requiredForNextRank"], _money(ref.required_for_next_rank_cents)),
            "capLimit": (total["capLimit"], _money(ref.cap_limit_cents)),
            "gap": (total["gap"], _money(ref.gap_cents)),
            "currentRank": (total["currentRank"], ref.rank),
        }
        for key, (got, wanted) in document_values.items():
            if got != wanted:
                found.append(f"user {user_id} totalVolume.{key}: recompute {got!r} reference {wanted!r}")
    return found


def describe(case: Case) -> str:
    """The case in a form to paste into a bug report."""
    tree = {u.user_id: (u.telegram_id, u.upline_telegram_id, u.previous_rank) for u in case.users}
    return (
        f"plan {case.plan.to_mapping()}\nroot {case.root_telegram_id} as_of {case.as_of} period {case.period}\n"
        f"users {tree}\npurchases {case.purchases}"
    )


def assert_agrees(case: Case) -> None:
    found = disagreements(case, run(case))
    assert not found, "\n".join(found[:30]) + "\n" + describe(case)


# --- the properties ---------------------------------------------------------------------------

# Under bench.mutation (its Hypothesis profile) a fifth of the examples: each mutant is a test
# session, and the properties' examples are most of one; the score says so.
EXAMPLES_SHARE = 5 if os.environ.get("HYPOTHESIS_PROFILE") == "mutation" else 1


def examples(count: int) -> settings:
    """Hypothesis settings for a property whose every example runs a whole recompute."""
    return settings(
        max_examples=max(5, count // EXAMPLES_SHARE), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
    )


@examples(100)
@given(cases())
def test_every_value_agrees_with_the_reference(case):
    assert_agrees(case)


@examples(30)
@given(cases(max_users=6))
def test_tiny_trees_agree_with_the_reference(case):
    # Few users, many purchases each: ties in time, pioneers competing for slots, ranks on the edge.
    assert_agrees(case)


def large_case(
    seed: int, plan: Plan, users: int = 2000, chain: int = 150, purchases: int = 6000, stored_pioneers: int = 0
) -> Case:
    """A seeded larger tree: a chain ``chain`` levels deep, the deepest part of the tree; the rest
    bushy below random users; random stored ranks, and ``stored_pioneers`` stored grants."""
    rng = random.Random(seed)
    links, depth = [], [0]
    for i in range(1, users):
        sponsor = i - 1 if i <= chain else rng.randrange(i)
        if depth[sponsor] >= chain:
            sponsor = 0  # nobody below the chain's end: the tree is exactly ``chain`` levels deep
        links.append(sponsor)
        depth.append(depth[sponsor] + 1)
    user_ids = list(range(1, users + 1))
    rng.shuffle(user_ids)
    telegram_ids = [10_000_000 + 11 * i for i in range(users)]
    rng.shuffle(telegram_ids)
    as_of = datetime(2025, 10, 17, 12, 0, 0)
    start = datetime(2025, 9, 1)
    rows = [
        Purchase(
            purchase_id=10 + i,
            user_id=user_ids[rng.randrange(users)],
            price_cents=rng.choice(PRICES_CENTS),
            created_at=start + timedelta(seconds=rng.randrange(61 * 86400)),
        )
        for i in range(purchases)
    ]
    people = [
        User(
            user_id=user_ids[i],
            telegram_id=telegram_ids[i],
            upline_telegram_id=telegram_ids[0] if i == 0 else telegram_ids[links[i - 1]],
            previous_rank=rng.choice([None, *RANK_NAMES[:3]]),
        )
        for i in range(users)
    ]
    for k, i in enumerate(rng.sample(range(users), stored_pioneers)):
        granted_at = start + timedelta(seconds=rng.randrange(61 * 86400))
        people[i] = dataclasses.replace(
            people[i], has_pioneer_bonus=True, pioneer_granted_at=granted_at, pioneer_purchase_id=900_000 + k
        )
    return Case(people, rows, plan, telegram_ids[0], as_of, "2025-10")


def scaled_plan(**overrides) -> Plan:
    """The default plan at 1/500 of its volumes, partners counted as is, five pioneer slots."""
    ranks = DEFAULT_PLAN.to_mapping()["ranks"]
    scaled = [("10", "100", 2), ("50", "1000", 4), ("100", "5000", 8), ("200", "20000", 12)]
    for rank, (pv, tv, ap) in zip(ranks[1:], scaled):
        rank.update(personal_volume=pv, team_volume=tv, active_partners=ap)
    return DEFAULT_PLAN.with_overrides({"ranks": ranks, "min_monthly_pv": "20.00", "pioneer_slots": 5, **overrides})


@pytest.mark.parametrize(
    "overrides, chain",
    [
        # the production depth limit (50) on a tree 150 levels deep: the limit cuts real volume
        ({}, 150),
        # a tree exactly one level deeper than the limit: only the root loses its deepest level
        ({}, 51),
        # a short limit with partners counted over the downline
        ({"max_depth": 3}, 150),
        # no limit, partners among direct referrals only
        ({"max_depth": None, "active_partners_scope": "direct"}, 150),
    ],
)
def test_a_larger_deep_tree_agrees_with_the_reference(overrides, chain):
    assert_agrees(large_case(seed=20251017, plan=scaled_plan(**overrides), chain=chain, stored_pioneers=2))


# --- refusals ---------------------------------------------------------------------------------

NOBODY = 42  # a telegramID no user has


@st.composite
def broken_trees(draw) -> Case:
    """A valid case with some uplines rewired: to nobody (orphan), to no one at all (NULL), or to any
    user including one's own descendants or oneself (a cycle)."""
    case = draw(cases(max_users=25))
    users = list(case.users)
    movable = list(range(1, len(users)))
    chosen = draw(st.lists(st.sampled_from(movable), unique=True, min_size=1, max_size=3)) if movable else []
    root_telegram_id = case.root_telegram_id
    for i in chosen:
        target = draw(st.one_of(st.just("nobody"), st.just("null"), st.integers(0, len(users) - 1)))
        if target == "nobody":
            upline = NOBODY
        elif target == "null":
            upline = None
        else:
            upline = users[target].telegram_id
            if target == i:
                # A user sponsoring itself is a one-user cycle only when the root is configured;
                # otherwise it is a second self-sponsored root (a different refusal).
                root_telegram_id = users[0].telegram_id
        users[i] = dataclasses.replace(users[i], upline_telegram_id=upline)
    return Case(users, case.purchases, case.plan, root_telegram_id, case.as_of, case.period, case.grant_texts)


@examples(60)
@given(broken_trees())
def test_cycles_and_orphans_are_refused_with_exactly_their_ids(case):
    bad = reference.unreachable(case.users, case.root_telegram_id)
    if not bad.orphans and not bad.cycle_members:
        # The rewiring kept a tree (e.g. moved a user under another branch): it must compute, and agree.
        assert_agrees(case)
        return
    with pytest.raises(InputRejected) as refused:
        run(case)
    by_kind = {p.kind: p for p in refused.value.problems}
    assert set(by_kind) == {k for k, ids in (("orphan", bad.orphans), ("cycle", bad.cycle_members)) if ids}
    if bad.orphans:
        assert set(by_kind["orphan"].ids) == bad.orphans
        assert set(by_kind["orphan"].detached_ids) == bad.below_orphans
        assert len(by_kind["orphan"].ids) == len(bad.orphans)
    if bad.cycle_members:
        assert set(by_kind["cycle"].ids) == bad.cycle_members
        assert set(by_kind["cycle"].detached_ids) == bad.below_cycles
        assert len(by_kind["cycle"].ids) == len(bad.cycle_members)
    # The operator's message names the offending userIDs (the first 20 of each kind).
    message = str(refused.value)
    for ids in (bad.orphans, bad.cycle_members):
        if ids:
            assert "userID " + ", ".join(str(i) for i in sorted(ids)[:20]) in message


def test_an_unreachable_lowest_user_id_is_refused_not_crashed():
    # Found by the property above: when the user with the lowest userID cannot reach the root
    # (here an orphan, userID 1), the tree must refuse with the id, not fail inside Polars.
    users = [User(1, 100, NOBODY), User(2, 200, 200)]
    case = Case(users, [], DEFAULT_PLAN, 200, datetime(2025, 10, 17), "2025-10")
    with pytest.raises(InputRejected) as refused:
        run(case)
    assert [(p.kind, p.ids) for p in refused.value.problems] == [("orphan", (1,))]
