"""The compensation plan: every threshold the recompute applies, typed and validated.

A plan is data (``plans/*.toml``); this module turns a mapping into a :class:`Plan` and refuses
a bad one naming the exact field. Money thresholds are held in integer cents.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

PartnerScope = Literal["downline", "direct"]
_RANK_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class PlanError(ValueError):
    """A plan file or override that cannot be applied; the message names the field."""


@dataclass(frozen=True)
class Rank:
    """One rank of the plan: its order, rate and the three requirements to qualify."""

    name: str
    order: int
    rate: Decimal
    personal_volume_cents: int
    team_volume_cents: int
    active_partners: int


@dataclass(frozen=True)
class Plan:
    """The plan's rules, as the recompute applies them."""

    version: str
    ranks: tuple[Rank, ...]
    min_monthly_pv_cents: int
    leg_cap_ratio: Decimal
    max_depth: int | None
    active_partners_scope: PartnerScope
    pioneer_slots: int
    pioneer_min_purchase_cents: int
    promote_only_active: bool
    root_takes_no_rank_checks: bool

    @property
    def rank_names(self) -> list[str]:
        return [rank.name for rank in self.ranks]

    def leg_cap_cents(self, rank: Rank) -> int:
        """Most one leg may supply toward ``rank``: the ratio of its team requirement, in whole
        cents, rounded down so a leg never supplies more than the ratio allows."""
        return int(Decimal(rank.team_volume_cents) * self.leg_cap_ratio)

    def with_overrides(self, overrides: dict[str, Any]) -> "Plan":
        """This plan with top-level parameters replaced (as scenario files give them)."""
        if not overrides:
            return self
        merged = self.to_mapping()
        merged.update(overrides)
        return plan_from_mapping(merged)

    def to_mapping(self) -> dict[str, Any]:
        """The plan as the mapping a plan file holds (money as decimal strings)."""
        return {
            "version": self.version,
            "min_monthly_pv": _cents_text(self.min_monthly_pv_cents),
            "leg_cap_ratio": str(self.leg_cap_ratio),
            "max_depth": "unlimited" if self.max_depth is None else self.max_depth,
            "active_partners_scope": self.active_partners_scope,
            "pioneer_slots": self.pioneer_slots,
            "pioneer_min_purchase": _cents_text(self.pioneer_min_purchase_cents),
            "promote_only_active": self.promote_only_active,
            "root_takes_no_rank_checks": self.root_takes_no_rank_checks,
            "ranks": [
                {
                    "name": r.name,
                    "rate": str(r.rate),
                    "personal_volume": _cents_text(r.personal_volume_cents),
                    "team_volume": _cents_text(r.team_volume_cents),
                    "active_partners": r.active_partners,
                }
                for r in self.ranks
            ],
        }


_TOP_LEVEL = {
    "version",
    "min_monthly_pv",
    "leg_cap_ratio",
    "max_depth",
    "active_partners_scope",
    "pioneer_slots",
    "pioneer_min_purchase",
    "promote_only_active",
    "root_takes_no_rank_checks",
    "ranks",
}
_RANK_KEYS = {"name", "rate", "personal_volume", "team_volume", "active_partners"}
MAX_VERSION_LENGTH = 100


def plan_from_mapping(data: dict[str, Any]) -> Plan:
    """A validated :class:`Plan` from a plan file's mapping; raises :class:`PlanError` naming the field."""
    unknown = sorted(set(data) - _TOP_LEVEL)
    if unknown:
        raise PlanError(f"plan: unknown field(s) {unknown}; known fields are {sorted(_TOP_LEVEL)}")
    missing = sorted(_TOP_LEVEL - set(data) - {"max_depth"})
    if missing:
        raise PlanError(f"plan: missing field(s) {missing}")
    ranks = _ranks(data["ranks"])
    scope = data["active_partners_scope"]
    if scope not in ("downline", "direct"):
        raise PlanError(f"plan.active_partners_scope: must be 'downline' or 'direct', got {scope!r}")
    ratio = _decimal("leg_cap_ratio", data["leg_cap_ratio"])
    if not Decimal(0) < ratio <= Decimal(1):
        raise PlanError(f"plan.leg_cap_ratio: must be in (0, 1], got {ratio}")
    version = data["version"]
    if not isinstance(version, str) or not version.strip():
        raise PlanError(f"plan.version: must be a non-empty string, got {version!r}")
    # the version is stored with every run (varchar(100)) and printed on one line
    if len(version) > MAX_VERSION_LENGTH or not version.isprintable():
        raise PlanError(f"plan.version: must be at most {MAX_VERSION_LENGTH} printable characters on one line, got {version!r}")
    return Plan(
        version=version,
        ranks=ranks,
        min_monthly_pv_cents=_cents("min_monthly_pv", data["min_monthly_pv"]),
        leg_cap_ratio=ratio,
        max_depth=_max_depth(data.get("max_depth", "unlimited")),
        active_partners_scope=scope,
        pioneer_slots=_count("pioneer_slots", data["pioneer_slots"]),
        pioneer_min_purchase_cents=_cents("pioneer_min_purchase", data["pioneer_min_purchase"]),
        promote_only_active=_flag("promote_only_active", data["promote_only_active"]),
        root_takes_no_rank_checks=_flag("root_takes_no_rank_checks", data["root_takes_no_rank_checks"]),
    )


def _ranks(items: Any) -> tuple[Rank, ...]:
    if not isinstance(items, list) or not items:
        raise PlanError("plan.ranks: must be a non-empty list of ranks in ascending order")
    ranks = []
    for order, item in enumerate(items):
        where = f"plan.ranks[{order}]"
        if not isinstance(item, dict):
            raise PlanError(f"{where}: must be a table, got {item!r}")
        if set(item) != _RANK_KEYS:
            raise PlanError(f"{where}: fields must be exactly {sorted(_RANK_KEYS)}, got {sorted(item)}")
        name = item["name"]
        if not isinstance(name, str) or not _RANK_NAME.match(name):
            raise PlanError(f"{where}.name: must be a lowercase identifier, got {name!r}")
        ranks.append(
            Rank(
                name=name,
                order=order,
                rate=_decimal(f"{where}.rate", item["rate"]),
                personal_volume_cents=_cents(f"{where}.personal_volume", item["personal_volume"]),
                team_volume_cents=_cents(f"{where}.team_volume", item["team_volume"]),
                active_partners=_count(f"{where}.active_partners", item["active_partners"]),
            )
        )
    names = [r.name for r in ranks]
    if len(set(names)) != len(names):
        raise PlanError(f"plan.ranks: rank names repeat: {names}")
    entry = ranks[0]
    if entry.personal_volume_cents or entry.team_volume_cents or entry.active_partners:
        raise PlanError(f"plan.ranks[0] ({entry.name}): the entry rank must require nothing")
    for lower, higher in zip(ranks, ranks[1:]):
        # ranks are in ascending order: a higher rank never asks less than the one below it
        for field, attribute in (("personal_volume", "personal_volume_cents"), ("team_volume", "team_volume_cents"), ("active_partners", "active_partners")):
            if getattr(higher, attribute) < getattr(lower, attribute):
                raise PlanError(
                    f"plan.ranks[{higher.order}].{field} ({higher.name}): requires less than the rank below it ({lower.name}); "
                    "ranks must be listed in ascending order of their requirements"
                )
    return tuple(ranks)


def _decimal(field: str, value: Any) -> Decimal:
    if isinstance(value, float):
        raise PlanError(f"{field}: write it as a string ({str(value)!r}) so it stays exact")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise PlanError(f"{field}: not a number: {value!r}") from None
    if not number.is_finite() or number < 0:
        raise PlanError(f"{field}: must be a finite number >= 0, got {value!r}")
    return number


def _cents(field: str, value: Any) -> int:
    number = _decimal(field, value) * 100
    if number != number.to_integral_value():
        raise PlanError(f"{field}: money has at most two decimal places, got {value!r}")
    return int(number)


def _count(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PlanError(f"{field}: must be a whole number >= 0, got {value!r}")
    return value


def _flag(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise PlanError(f"{field}: must be true or false, got {value!r}")
    return value


def _max_depth(value: Any) -> int | None:
    if value is None or value == "unlimited":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PlanError(f"plan.max_depth: must be a whole number >= 1 or 'unlimited', got {value!r}")
    return value


def _cents_text(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


__all__ = ["Plan", "PlanError", "Rank", "plan_from_mapping"]
