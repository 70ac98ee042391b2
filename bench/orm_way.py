"""The platform's way: the SQLAlchemy ORM, one purchase at a time, JSON changed in place.

For each purchase (in createdAt order) the online code loaded the buyer, added the price to its
personal volume inside its ``mlmVolumes`` JSON dict in place (and, correctly, called
``flag_modified``), then walked the upline chain by telegramID, adding the price to each
ancestor's ``fullVolume`` column and to ``totalVolume["fullVolume"]``, and committed the purchase.
Here that walk follows the domain's rule (at most ``max_depth`` levels, never past the root, the
root credited once), so a replay of every purchase from zeroed counters stores exactly the full
and personal volumes the project computes (tests/bench checks that). Activity, active partners,
ranks, pioneers and the rest of the documents are not maintained: this is the cheapest part of
what the platform did per purchase.

``timed_sample`` times a sample and extrapolates its rate to every purchase.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session, registry
from sqlalchemy.orm.attributes import flag_modified

from db import schema
from db.connection import Database, sqlalchemy_url


class PlatformUser:
    """A ``users`` row as the platform's ORM maps it (every column; JSON as plain dicts)."""


registry().map_imperatively(PlatformUser, schema.users)


@dataclass(frozen=True)
class Purchase:
    """What the online code knew of a purchase when it handled it."""

    purchase_id: int
    user_id: int
    price: Decimal


@dataclass(frozen=True)
class Replay:
    """Purchases applied, the seconds they took, and the ancestors credited in all."""

    purchases: int
    seconds: float
    ancestors: int


@dataclass(frozen=True)
class OrmTiming:
    """A timed sample and its extrapolation: ``purchases_total`` purchases before the cut-off,
    ``sampled`` of them applied in ``seconds``; ``estimated_seconds`` for all of them at the
    sample's rate (equal to ``seconds`` when the sample was every purchase)."""

    purchases_total: int
    sampled: int
    seconds: float
    ancestors: int

    @property
    def rate(self) -> float:
        return self.sampled / self.seconds if self.seconds else 0.0

    @property
    def extrapolated(self) -> bool:
        return self.sampled < self.purchases_total

    @property
    def estimated_seconds(self) -> float:
        return self.purchases_total / self.rate if self.rate else math.inf


def platform_engine(db: Database) -> sa.Engine:
    """An engine as a platform would configure it: UTC sessions, no pre-ping (which would add a
    round trip to each purchase's commit through the project's engine)."""
    return sa.create_engine(sqlalchemy_url(db.uri), connect_args={"options": "-c timezone=UTC"})


def _add(document: dict | None, key: str, price: Decimal) -> dict:
    """``document`` with ``price`` added to ``key`` in place (a new dict when there was none).
    JSON numbers are floats on the platform; rounding each sum to cents keeps it at whole cents."""
    document = document if isinstance(document, dict) else {}
    document[key] = round(float(document.get(key) or 0) + float(price), 2)
    return document


def apply_purchase(session: Session, purchase: Purchase, *, root_telegram_id: int, max_depth: int | None) -> int:
    """Apply one purchase and commit; returns how many ancestors were credited."""
    buyer = session.get(PlatformUser, purchase.user_id)
    buyer.mlmVolumes = _add(buyer.mlmVolumes, "personalTotal", purchase.price)
    flag_modified(buyer, "mlmVolumes")  # an in-place change is invisible to the ORM without it
    buyer.personalVolumeTotal = (buyer.personalVolumeTotal or Decimal(0)) + purchase.price
    current, credited = buyer, 0
    while current.telegramID != root_telegram_id and (max_depth is None or credited < max_depth):
        # One query per level, by telegramID (the tree's link); autoflush sends the previous
        # level's UPDATE first, as on the platform.
        ancestor = session.scalars(sa.select(PlatformUser).where(PlatformUser.telegramID == current.upline)).one_or_none()
        if ancestor is None:  # an upline that matches nobody ends the walk
            break
        ancestor.fullVolume = (ancestor.fullVolume or Decimal(0)) + purchase.price
        ancestor.totalVolume = _add(ancestor.totalVolume, "fullVolume", purchase.price)
        flag_modified(ancestor, "totalVolume")
        current, credited = ancestor, credited + 1
    session.commit()  # one transaction per purchase, as the platform committed
    return credited


def replay(
    engine: sa.Engine, purchases: list[Purchase], *, root_telegram_id: int, max_depth: int | None, deadline: float | None = None
) -> Replay:
    """Apply ``purchases`` in order, each committed; stop early once ``deadline`` (a
    ``time.perf_counter()`` value) has passed."""
    applied = ancestors = 0
    started = time.perf_counter()
    with Session(engine) as session:
        for purchase in purchases:  # deliberately one at a time: that is the platform's way
            if deadline is not None and time.perf_counter() > deadline:
                break
            ancestors += apply_purchase(session, purchase, root_telegram_id=root_telegram_id, max_depth=max_depth)
            applied += 1
    return Replay(purchases=applied, seconds=time.perf_counter() - started, ancestors=ancestors)


def naive_utc_datetime(instant: datetime) -> datetime:
    """A cut-off as the platform's ``timestamp without time zone`` (meant as UTC)."""
    return instant.astimezone(timezone.utc).replace(tzinfo=None)


PURCHASES_BEFORE = """FROM purchases WHERE "createdAt" < :as_of AND "packPrice" >= 0"""


def purchase_count(engine: sa.Engine, as_of: datetime) -> int:
    """Purchases the recompute counts (before the cut-off, price not negative)."""
    with engine.connect() as connection:
        return connection.execute(sa.text(f"SELECT count(*) {PURCHASES_BEFORE}"), {"as_of": naive_utc_datetime(as_of)}).scalar_one()


def systematic_sample(engine: sa.Engine, as_of: datetime, size: int, offset: float = 0.0) -> list[Purchase]:
    """About ``size`` purchases evenly spread over the whole history, in createdAt order: every
    ``total/size``-th, starting ``offset`` (0..1) of a stride in. Spread over the history rather
    than the first ones, whose buyers joined early and sit near the root (short walks)."""
    query = sa.text(
        f"""WITH p AS (
                SELECT "purchaseID", "userID", "packPrice",
                       row_number() OVER (ORDER BY "createdAt", "purchaseID") - 1 AS position
                {PURCHASES_BEFORE}),
            picked AS (
                SELECT DISTINCT floor((k + :offset) * (SELECT count(*) FROM p) / :size)::bigint AS position
                FROM generate_series(0, :size - 1) AS k)
            SELECT "purchaseID", "userID", "packPrice" FROM p JOIN picked USING (position) ORDER BY position"""
    )
    with engine.connect() as connection:
        rows = connection.execute(query, {"as_of": naive_utc_datetime(as_of), "size": max(1, size), "offset": offset}).all()
    return [Purchase(int(p), int(u), Decimal(price)) for p, u, price in rows]


def timed_sample(engine: sa.Engine, *, as_of: datetime, root_telegram_id: int, max_depth: int | None, budget_s: float) -> OrmTiming:
    """Time the ORM way on a sample that fits ``budget_s`` seconds of replay, and extrapolate.

    A pilot of a few purchases spread over the history gives the rate; the main sample is sized
    from it to fill the rest of the budget. The deadline only guards against a misjudged rate
    (cut short, a sample would keep only its earliest purchases). Selecting the samples (a sort
    of every purchase) is not timed and does not use the budget.
    """
    total = purchase_count(engine, as_of)
    pilot_sample = systematic_sample(engine, as_of, min(total, 20))
    pilot = replay(engine, pilot_sample, root_telegram_id=root_telegram_id, max_depth=max_depth, deadline=time.perf_counter() + budget_s)
    runs = [pilot]
    remaining = budget_s - pilot.seconds
    if 0 < pilot.purchases < total and remaining > 1:
        wanted = min(total - pilot.purchases, int(0.9 * remaining * pilot.purchases / pilot.seconds))
        if wanted > 0:
            # Offset by half a stride, so the main sample mostly avoids the pilot's purchases.
            sample = systematic_sample(engine, as_of, wanted, offset=0.5)
            deadline = time.perf_counter() + remaining
            runs.append(replay(engine, sample, root_telegram_id=root_telegram_id, max_depth=max_depth, deadline=deadline))
    return OrmTiming(
        purchases_total=total,
        sampled=sum(r.purchases for r in runs),
        seconds=sum(r.seconds for r in runs),
        ancestors=sum(r.ancestors for r in runs),
    )


def zero_counters(engine: sa.Engine) -> None:
    """Reset what the ORM way adds to (the volume columns and JSON keys), so that a replay of
    every purchase starts from nothing, as a platform that began with its first purchase."""
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                """UPDATE users SET "fullVolume" = 0, "personalVolumeTotal" = 0,
                       "mlmVolumes" = ("mlmVolumes"::jsonb - 'personalTotal')::json,
                       "totalVolume" = ("totalVolume"::jsonb - 'fullVolume')::json"""
            )
        )


def every_purchase(engine: sa.Engine, as_of: datetime) -> list[Purchase]:
    """Every purchase before the cut-off, in createdAt order (for small databases: tests)."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(f"""SELECT "purchaseID", "userID", "packPrice" {PURCHASES_BEFORE} ORDER BY "createdAt", "purchaseID" """),
            {"as_of": naive_utc_datetime(as_of)},
        ).all()
    return [Purchase(int(p), int(u), Decimal(price)) for p, u, price in rows]
