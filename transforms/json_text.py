"""JSON text built column-wise from expressions, so documents never pass through Python objects.

An object is one flat concatenation (the fastest string building Polars has); money goes in as
exact decimal literals built from integer cents (``1250.50``), never floats.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from transforms.money import cents_text

NULL = pl.lit("null")


# What JSON requires escaped in a string: the backslash, the quote and the control characters
# U+0000-U+001F (a user's first name is the platform's data and may hold a newline or a tab).
_SHORT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_ESCAPES = _SHORT_ESCAPES | {chr(c): f"\\u{c:04x}" for c in range(0x20) if chr(c) not in _SHORT_ESCAPES}


def string(value: pl.Expr) -> pl.Expr:
    """A JSON string (null stays null)."""
    # One pass, never inside a replacement: the backslashes it adds are not escaped again.
    escaped = value.str.replace_many(list(_ESCAPES), list(_ESCAPES.values()))
    return pl.concat_str(pl.lit('"'), escaped, pl.lit('"'))


def number(value: pl.Expr) -> pl.Expr:
    return value.cast(pl.String)


def money(cents: pl.Expr) -> pl.Expr:
    """A JSON number with two decimals, from integer cents."""
    return cents_text(cents)


def boolean(value: pl.Expr) -> pl.Expr:
    return pl.when(value).then(pl.lit("true")).otherwise(pl.lit("false"))


@dataclass(frozen=True)
class Member:
    """One ``"key": value`` of an object; ``when`` (if given) decides whether it is there at all."""

    key: str
    value: pl.Expr
    when: pl.Expr | None = None


def member(key: str, value: pl.Expr, *, when: pl.Expr | None = None) -> Member:
    """A member; a null value is written as JSON null. With ``when``, present only where it holds."""
    return Member(key, value.fill_null(NULL), when)


def obj(*members: Member) -> pl.Expr:
    """A JSON object. The first member must always be present (it carries no leading comma)."""
    if not members or members[0].when is not None:
        raise ValueError("a JSON object's first member must always be present")
    pieces: list[pl.Expr] = []
    text = "{"
    for position, m in enumerate(members):
        prefix = ("" if position == 0 else ",") + f'"{m.key}":'
        if m.when is None:
            text += prefix
            pieces += [pl.lit(text), m.value]
            text = ""
        else:
            pieces.append(pl.when(m.when).then(pl.concat_str(pl.lit(prefix), m.value)).otherwise(pl.lit("")))
    pieces.append(pl.lit(text + "}"))
    return pl.concat_str(pieces)
