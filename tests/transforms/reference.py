"""A deliberately simple reference of the plan's rules (domain.md, "The plan (rules)" 1-10), in plain Python.

It exists only for the tests: the obvious definitions, one purchase and one user at a time,
walking up the sponsor chain, so that the vectorized Polars recompute can be checked against
something a reader verifies by eye. No Polars here, no cleverness, no speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from transforms.plan import Plan


@dataclass(frozen=True)
class User:
    """One row of ``users`` as the recompute needs it; ``pioneer_granted_at`` naive UTC."""

    user_id: int
    telegram_id: int
    upline_telegram_id: int | None
    previous_rank: str | None = None
    has_pioneer_bonus: bool = False
    pioneer_granted_at: datetime | None = None
    pioneer_purchase_id: int | None = None


@dataclass(frozen=True)
class Purchase:
    """One row of ``purchases``; ``created_at`` naive UTC."""

    purchase_id: int
    user_id: int
    price_cents: int
    created_at: datetime


@dataclass(frozen=True)
class Branch:
    """One direct referral of a sponsor and the volume it brings: ``B(c) = PVT(c) + FV(c)``."""

    referral_user_id: int
    referral_telegram_id: int
    branch_cents: int


@dataclass(frozen=True)
class Expected:
    """What the rules say about one user."""

    personal_volume_total_cents: int
    monthly_pv_cents: int
    last_active_month: str | None
    is_active: bool
    full_volume_cents: int
    active_partners: int
    direct_referrals: int
    qualified_rank: str
    rank: str
    rank_rose: bool
    pioneer_number: int | None
    pioneer_purchase_id: int | None
    pioneer_granted_at: datetime | None
    required_for_next_rank_cents: int
    cap_limit_cents: int
    qualifying_volume_cents: int
    gap_cents: int
    branches: tuple[Branch, ...]  # largest first, ties by referral_user_id


def month_of(instant: datetime) -> str:
    """The ``YYYY-MM`` period an instant falls in."""
    return f"{instant.year:04d}-{instant.month:02d}"


def root_of(users: list[User], root_telegram_id: int | None) -> User:
    """The configured default referrer, or else the one user who sponsors itself."""
    if root_telegram_id is not None:
        return next(u for u in users if u.telegram_id == root_telegram_id)
    (root,) = [u for u in users if u.upline_telegram_id == u.telegram_id]
    return root


def sponsors(users: list[User], root: User) -> dict[int, int | None]:
    """userID -> the sponsor's userID (None for the root and for an upline that matches nobody)."""
    by_telegram = {u.telegram_id: u.user_id for u in users}
    return {
        u.user_id: None if u.user_id == root.user_id else by_telegram.get(u.upline_telegram_id)
        for u in users
    }


def uplines(user_id: int, sponsor: dict[int, int | None]):
    """The user's sponsor, its sponsor, ... up to the root: (levels up, ancestor's userID)."""
    level, current = 0, user_id
    while sponsor[current] is not None:
        level, current = level + 1, sponsor[current]
        yield level, current


def within(level: int, max_depth: int | None) -> bool:
    """Whether ``level`` levels below is inside the depth limit (None: no limit)."""
    return max_depth is None or level <= max_depth


@dataclass(frozen=True)
class Unreachable:
    """Users that cannot reach the root, found by walking each sponsor chain."""

    orphans: set[int]  # upline matches nobody
    cycle_members: set[int]  # on a sponsor chain that loops
    below_orphans: set[int]  # not bad themselves, their chain ends at an orphan
    below_cycles: set[int]  # not bad themselves, their chain runs into a loop


def unreachable(users: list[User], root_telegram_id: int | None) -> Unreachable:
    """Walk every user's sponsor chain until it reaches the root, an orphan, or a user seen before."""
    root = root_of(users, root_telegram_id)
    sponsor = sponsors(users, root)
    orphans = {u for u, s in sponsor.items() if s is None and u != root.user_id}
    cycle_members: set[int] = set()
    below_orphans: set[int] = set()
    below_cycles: set[int] = set()
    for user in users:
        path = [user.user_id]
        while True:
            current = path[-1]
            if current == root.user_id:
                break
            if current in orphans:
                below_orphans.update(path[:-1])
                break
            following = sponsor[current]
            if following in path:
                loop = path[path.index(following):]
                cycle_members.update(loop)
                below_cycles.update(path[: path.index(following)])
                break
            path.append(following)
    return Unreachable(orphans, cycle_members, below_orphans, below_cycles)


Grant = tuple[int, int | None, datetime | None]  # (pioneerNumber, pioneerPurchaseId, pioneerGrantedAt)


def pioneers(users: list[User], purchases: list[Purchase], plan: Plan, as_of: datetime) -> dict[int, Grant]:
    """userID -> its grant, for every pioneer after the run."""
    qualifying = sorted(
        (p for p in purchases if p.created_at < as_of and p.price_cents >= plan.pioneer_min_purchase_cents),
        key=lambda p: (p.created_at, p.purchase_id),
    )
    first_qualifying: dict[int, Purchase] = {}
    for p in qualifying:
        first_qualifying.setdefault(p.user_id, p)

    # Stored grants are permanent and hold their slots. A field missing from a stored grant comes
    # from the user's qualifying purchase (the implementation's documented choice; domain.md is silent).
    grants: dict[int, tuple[datetime | None, int | None]] = {}
    for u in users:
        if u.has_pioneer_bonus:
            own = first_qualifying.get(u.user_id)
            granted_at, purchase_id = u.pioneer_granted_at, u.pioneer_purchase_id
            if granted_at is None and own is not None:
                granted_at = own.created_at
            if purchase_id is None and own is not None:
                purchase_id = own.purchase_id
            grants[u.user_id] = (granted_at, purchase_id)
    # Remaining slots: walk the qualifying purchases in order, each user at its first one.
    for p in qualifying:
        if len(grants) >= plan.pioneer_slots:
            break
        if p.user_id not in grants:
            grants[p.user_id] = (p.created_at, p.purchase_id)

    def order(item):
        _, (granted_at, purchase_id) = item
        return (granted_at is None, granted_at or datetime.min, purchase_id is None, purchase_id or 0)

    return {
        user_id: (number, purchase_id, granted_at)
        for number, (user_id, (granted_at, purchase_id)) in enumerate(sorted(grants.items(), key=order), start=1)
    }


def expected_state(
    users: list[User],
    purchases: list[Purchase],
    plan: Plan,
    *,
    root_telegram_id: int | None,
    as_of: datetime,
    period: str,
) -> dict[int, Expected]:
    """Every user's values under ``plan`` as of ``as_of`` for ``period`` (a valid tree only)."""
    root = root_of(users, root_telegram_id)
    sponsor = sponsors(users, root)
    counted = [p for p in purchases if p.created_at < as_of]

    # 1, 2, 6: personal volumes and activity, one purchase at a time.
    pvt = {u.user_id: 0 for u in users}
    monthly = {u.user_id: {} for u in users}
    for p in counted:
        pvt[p.user_id] += p.price_cents
        month = month_of(p.created_at)
        monthly[p.user_id][month] = monthly[p.user_id].get(month, 0) + p.price_cents
    pv = {u: months.get(period, 0) for u, months in monthly.items()}
    active = {u: pv[u] >= plan.min_monthly_pv_cents for u in pv}
    last_active = {
        u: max((m for m, cents in months.items() if m <= period and cents >= plan.min_monthly_pv_cents), default=None)
        for u, months in monthly.items()
    }

    # 3: full volume, walking up from each purchase to every ancestor within the depth limit.
    full = {u.user_id: 0 for u in users}
    for p in counted:
        for level, ancestor in uplines(p.user_id, sponsor):
            if within(level, plan.max_depth):
                full[ancestor] += p.price_cents

    # 7: active partners, walking up from each active user.
    partners = {u.user_id: 0 for u in users}
    for u in users:
        if active[u.user_id]:
            for level, ancestor in uplines(u.user_id, sponsor):
                in_scope = level == 1 if plan.active_partners_scope == "direct" else within(level, plan.max_depth)
                if in_scope:
                    partners[ancestor] += 1
    partners[root.user_id] = 0

    # 4: branches, one per direct referral (the root is not its own referral).
    branches: dict[int, list[Branch]] = {u.user_id: [] for u in users}
    for u in users:
        s = sponsor[u.user_id]
        if s is not None:
            branches[s].append(Branch(u.user_id, u.telegram_id, pvt[u.user_id] + full[u.user_id]))

    def qualifying(user_id: int, rank) -> int:  # 5: each leg capped per rank evaluated
        return sum(min(b.branch_cents, plan.leg_cap_cents(rank)) for b in branches[user_id])

    names = plan.rank_names
    top = len(plan.ranks) - 1
    grants = pioneers(users, purchases, plan, as_of)
    result = {}
    for u in users:
        uid = u.user_id
        is_root = uid == root.user_id
        previous = names.index(u.previous_rank) if u.previous_rank is not None else 0
        # 8: the highest rank whose three requirements hold.
        qualified = 0
        for rank in plan.ranks:
            if (
                pvt[uid] >= rank.personal_volume_cents
                and qualifying(uid, rank) >= rank.team_volume_cents
                and partners[uid] >= rank.active_partners
            ):
                qualified = rank.order
        if is_root and plan.root_takes_no_rank_checks:
            qualified = previous
        # 9: never down; promotion only when active (if the plan says so), never for the root.
        may_rise = (active[uid] or not plan.promote_only_active) and not (is_root and plan.root_takes_no_rank_checks)
        held = max(previous, qualified) if may_rise else previous
        following = plan.ranks[min(held + 1, top)]
        required = following.team_volume_cents
        toward = qualifying(uid, following)
        number, purchase_id, granted_at = grants.get(uid, (None, None, None))
        result[uid] = Expected(
            personal_volume_total_cents=pvt[uid],
            monthly_pv_cents=pv[uid],
            last_active_month=last_active[uid],
            is_active=active[uid],
            full_volume_cents=full[uid],
            active_partners=partners[uid],
            direct_referrals=len(branches[uid]),
            qualified_rank=names[qualified],
            rank=names[held],
            rank_rose=held > previous,
            pioneer_number=number,
            pioneer_purchase_id=purchase_id,
            pioneer_granted_at=granted_at,
            required_for_next_rank_cents=required,
            cap_limit_cents=plan.leg_cap_cents(following),
            qualifying_volume_cents=toward,
            gap_cents=max(0, required - toward),
            branches=tuple(sorted(branches[uid], key=lambda b: (-b.branch_cents, b.referral_user_id))),
        )
    return result
