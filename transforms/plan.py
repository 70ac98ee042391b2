"""The compensation plan: every threshold the recompute applies, as a typed pydantic model.

A plan is data (``plans/*.toml``). Each field is declared once below, with its unit, its range
and the key the plan file spells it with; pydantic validates a file's mapping against it, and
the same declarations give the JSON Schema editors check plan files with
(``mlm-recompute plan schema``). Money is written as exact decimal text in US dollars and held
as integer cents (``*_cents``); floats are refused so no amount is ever rounded on its way in.
A bad plan is refused with one line naming each offending field's path (``plan.ranks[2].
team_volume``) and the value found there.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    StrictBool,
    ValidationError,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

PartnerScope = Literal["downline", "direct"]

# The version is stored with every run (``mlm_runs.plan_version``, varchar(100)) and printed on
# one line of every summary.
MAX_VERSION_LENGTH = 100
# Decimal text as plan files write it: digits, optionally a point and more digits (no sign, no
# exponent); the same pattern is what the JSON Schema tells editors.
_DECIMAL_TEXT = r"^[0-9]+(\.[0-9]+)?$"
_MONEY_TEXT = r"^[0-9]+(\.[0-9]{1,2})?$"
_PRINTABLE_LINE = r"^[^\u0000-\u001f\u007f]+$"
_RANK_NAME = r"^[a-z][a-z0-9_]*$"


class PlanError(ValueError):
    """A plan file or override that cannot be applied. The message is one line naming each
    offending field's path and value; ``fields`` lists those paths (``plan.ranks[2].rate``)."""

    def __init__(self, message: str, fields: tuple[str, ...] = ()):
        super().__init__(message)
        self.fields = fields


def _exact_number(value: Any) -> Any:
    """Refuse floats (and booleans, which Python counts as numbers) before they become decimals:
    ``0.1`` in a TOML file is a binary float, and money must stay exact."""
    if isinstance(value, bool):
        raise PydanticCustomError("exact_number", "must be a number written as a string, not true or false")
    if isinstance(value, float):
        raise PydanticCustomError("exact_number", 'write it as a string ("{text}") so it stays exact', {"text": str(value)})
    return value


def _to_cents(amount: Decimal) -> int:
    return int(amount * 100)


def _cents_text(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _number_schema(pattern: str, description: str, maximum: int | None = None) -> WithJsonSchema:
    """A decimal as plan files write it: text (exact) or a whole number; never a float."""
    whole = {"type": "integer", "minimum": 0} | ({} if maximum is None else {"maximum": maximum})
    return WithJsonSchema({"anyOf": [{"type": "string", "pattern": pattern}, whole], "description": description})


# An amount of money in US dollars, at most two decimal places, >= 0, held as integer cents.
Cents = Annotated[
    Decimal,  # validated as an exact decimal, then held as int (``_to_cents``)
    BeforeValidator(_exact_number),
    Field(ge=0, decimal_places=2, allow_inf_nan=False),
    AfterValidator(_to_cents),
    PlainSerializer(_cents_text, return_type=str),
    _number_schema(_MONEY_TEXT, 'US dollars, at most two decimal places, >= 0, as text ("1250.50") or a whole number'),
]
# A share between 0 and 1 inclusive (a commission rate).
Rate = Annotated[
    Decimal,
    BeforeValidator(_exact_number),
    Field(ge=0, le=1, allow_inf_nan=False),
    _number_schema(_DECIMAL_TEXT, 'a share from 0 to 1, as text ("0.04")', maximum=1),
]
# A share above 0, at most 1 (the leg cap).
Ratio = Annotated[
    Decimal,
    BeforeValidator(_exact_number),
    Field(gt=0, le=1, allow_inf_nan=False),
    _number_schema(_DECIMAL_TEXT, 'a share above 0 and at most 1, as text ("0.5")', maximum=1),
]
# A whole number >= 0 (never true/false, never 2.0 or "2").
Count = Annotated[int, Field(ge=0, strict=True)]


def _unlimited_is_none(value: Any) -> Any:
    if isinstance(value, str):
        if value != "unlimited":
            raise PydanticCustomError("depth", 'must be a whole number >= 1 or "unlimited"')
        return None
    return value


# How many levels below a user count toward it; None (written "unlimited") for no limit.
Depth = Annotated[
    Annotated[int, Field(ge=1, strict=True)] | None,
    BeforeValidator(_unlimited_is_none),
    PlainSerializer(lambda depth: "unlimited" if depth is None else depth),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "enum": ["unlimited"]}],
            "description": 'levels below a user that count toward it: a whole number >= 1, or "unlimited"',
        }
    ),
]


def _one_printable_line(version: str) -> str:
    if not version.strip() or not version.isprintable():
        raise PydanticCustomError("printable_line", "must be printable characters on one line, not only spaces")
    return version


Version = Annotated[
    str,
    Field(min_length=1, max_length=MAX_VERSION_LENGTH, strict=True, json_schema_extra={"pattern": _PRINTABLE_LINE}),
    AfterValidator(_one_printable_line),
]

_FROZEN_STRICT = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class Rank(BaseModel):
    """One rank of the plan: its name, commission rate and the three requirements to qualify
    (a month's personal volume, qualifying team volume, active partners). ``order`` is its
    position in the plan's ascending list (0 is the entry rank)."""

    model_config = _FROZEN_STRICT

    # at most 50 characters: snapshots store it in varchar(50) (mlm_period_snapshots.rank)
    name: Annotated[str, Field(pattern=_RANK_NAME, max_length=50, strict=True, description="lowercase identifier, e.g. builder")]
    rate: Rate
    personal_volume_cents: Cents = Field(alias="personal_volume", description="personal volume required in the month (USD)")
    team_volume_cents: Cents = Field(alias="team_volume", description="qualifying team volume required (USD), legs capped by leg_cap_ratio")
    active_partners: Count = Field(description="active partners required (within active_partners_scope)")
    _order: int = PrivateAttr(default=0)

    @property
    def order(self) -> int:
        return self._order


# The requirements that must not decrease from one rank to the next: (file key, attribute).
_REQUIREMENTS = (("personal_volume", "personal_volume_cents"), ("team_volume", "team_volume_cents"), ("active_partners", "active_partners"))


class Plan(BaseModel):
    """The plan's rules, as the recompute applies them (money in integer cents)."""

    model_config = ConfigDict(**_FROZEN_STRICT, title="mlm-recompute plan")

    version: Version = Field(description=f"the plan's version, stored with every run: one printable line of at most {MAX_VERSION_LENGTH} characters")
    ranks: tuple[Rank, ...] = Field(
        min_length=1, description="ranks in ascending order; the first is the entry rank and requires nothing; requirements never decrease"
    )
    min_monthly_pv_cents: Cents = Field(alias="min_monthly_pv", description="monthly personal volume (USD) that makes a user active")
    leg_cap_ratio: Ratio = Field(description="most of a rank's team-volume requirement one leg may supply")
    max_depth: Depth = Field(default=None, description="levels below a user that count toward it")
    active_partners_scope: PartnerScope = Field(description="downline: active users within max_depth below; direct: direct referrals only")
    pioneer_slots: Count = Field(description="how many pioneers the platform numbers")
    pioneer_min_purchase_cents: Cents = Field(alias="pioneer_min_purchase", description="single purchase (USD) that makes a buyer a pioneer candidate")
    promote_only_active: StrictBool = Field(description="a rank is gained only in a month the user is active")
    root_takes_no_rank_checks: StrictBool = Field(description="the tree's root is not ranked by the requirements")

    @field_validator("ranks")
    @classmethod
    def _ranks_in_ascending_order(cls, ranks: tuple[Rank, ...]) -> tuple[Rank, ...]:
        """Number the ranks by position, and refuse a list that is not ascending: a repeated
        name, an entry rank that requires something, or a requirement lower than the rank below."""
        numbered = []
        for order, rank in enumerate(ranks):
            rank = rank.model_copy()  # a Rank given as an object may sit in another plan too
            rank._order = order
            numbered.append(rank)
        names = [rank.name for rank in numbered]
        for order, name in enumerate(names):
            if name in names[:order]:
                raise _rank_error(order, "name", "repeats the name of ranks[{first}]", first=names.index(name))
        entry = numbered[0]
        for key, attribute in _REQUIREMENTS:
            if getattr(entry, attribute):
                raise _rank_error(0, key, "the entry rank (the first) must require nothing")
        for lower, higher in zip(numbered, numbered[1:]):
            for key, attribute in _REQUIREMENTS:
                if getattr(higher, attribute) < getattr(lower, attribute):
                    raise _rank_error(
                        higher.order, key, "requires less than the rank below it ({lower}) (ranks are listed in ascending order of their requirements)", lower=lower.name
                    )
        return tuple(numbered)

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
        return plan_from_mapping({**self.to_mapping(), **overrides})

    def to_mapping(self) -> dict[str, Any]:
        """The plan as the mapping a plan file holds (money and shares as decimal strings)."""
        return self.model_dump(mode="json", by_alias=True)


def _rank_error(order: int, key: str, message: str, **context: Any) -> PydanticCustomError:
    """A rank-order error located at ``ranks[order].key`` (pydantic locates it at ``ranks``;
    ``at`` carries the rest of the path to the message)."""
    return PydanticCustomError("rank_order", message, {"at": (order, key), **context})


def plan_from_mapping(data: Any) -> Plan:
    """A validated :class:`Plan` from a plan file's mapping; raises :class:`PlanError` naming
    every offending field and its value on one line."""
    try:
        return Plan.model_validate(data)
    except ValidationError as error:
        texts, paths = _problems(error, data)
        raise PlanError("; ".join(texts), paths) from None


def plan_json_schema() -> dict[str, Any]:
    """The JSON Schema of a plan file (the keys and values ``plans/*.toml`` hold)."""
    schema = Plan.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


_SHOWN_PROBLEMS = 10


def _problems(error: ValidationError, data: Any) -> tuple[list[str], tuple[str, ...]]:
    """Each error's text (missing fields said once per table), and every offending path. A
    list whose items failed also says it has too few valid items; that echo is dropped."""
    errors = error.errors(include_url=False)
    failed = [tuple(e["loc"]) for e in errors]
    kept = [e for e in errors if not (e["type"] == "too_short" and any(len(loc) > len(e["loc"]) and loc[: len(e["loc"])] == tuple(e["loc"]) for loc in failed))]
    missing: dict[str, list[str]] = {}  # parent path -> the fields missing there, said once
    problems = []
    for e in kept:
        path, text = _problem(e, data)
        if e["type"] == "missing":
            parent, _, field = path.rpartition(".")
            if parent not in missing:
                missing[parent] = []
                problems.append((parent, parent))  # filled in below, in the place of the first
            missing[parent].append(field)
        else:
            problems.append((path, text))
    paths = tuple(path for path, text in problems if text != path) + tuple(f"{parent}.{field}" for parent, fields in missing.items() for field in fields)
    texts = [f"{path}: missing field(s) {missing[path]}" if path in missing and text == path else text for path, text in problems]
    if len(texts) > _SHOWN_PROBLEMS:
        texts = texts[:_SHOWN_PROBLEMS] + [f"and {len(texts) - _SHOWN_PROBLEMS} more"]
    return texts, paths


def _problem(error: dict, data: Any) -> tuple[str, str]:
    context = error.get("ctx") or {}
    loc = tuple(error["loc"]) + tuple(context.get("at", ()))
    path = "plan" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    where = path + _rank_name_at(data, loc)
    if error["type"] == "missing":
        return path, f"{where}: missing (required)"
    value = _value_at(data, loc) if "at" in context else error["input"]
    if error["type"] == "extra_forbidden":
        # only a rank is a table inside the plan: an unknown key below the top is a rank's
        known = _known_keys(Rank if loc[0] == "ranks" else Plan)
        return path, f"{where}: unknown field, got {_shown(value)}; known fields are {known}"
    if error["type"] == "too_short":
        message = f"must hold at least {context['min_length']} item(s)"
    else:
        message = error["msg"][0].lower() + error["msg"][1:]
    return path, f"{where}: {message}, got {_shown(value)}"


def _rank_name_at(data: Any, loc: tuple) -> str:
    """`` (growth)`` for a path inside ``ranks[i]`` whose rank has a name, else nothing."""
    if len(loc) < 2 or loc[0] != "ranks" or not isinstance(loc[1], int) or loc[2:] == ("name",):
        return ""
    rank = _value_at(data, loc[:2])
    name = rank.get("name") if isinstance(rank, dict) else None
    return f" ({name})" if isinstance(name, str) and re.match(_RANK_NAME, name) else ""


def _value_at(data: Any, loc: tuple) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _shown(value: Any, width: int = 60) -> str:
    """The value as it appears in a one-line message: its repr, cut to ``width`` with its length."""
    text = repr(value)
    if len(text) <= width:
        return text
    length = f" ({len(value)} characters)" if isinstance(value, str) else ""
    return text[:width] + "..." + length


def _known_keys(model: type[BaseModel]) -> list[str]:
    return sorted(field.alias or name for name, field in model.model_fields.items())


__all__ = ["MAX_VERSION_LENGTH", "PartnerScope", "Plan", "PlanError", "Rank", "plan_from_mapping", "plan_json_schema"]
