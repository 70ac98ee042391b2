"""JSON text built column-wise from expressions, so documents never pass through Python objects.

Money goes in as exact decimal literals built from integer cents (``1250.50``), never floats.
"""

from __future__ import annotations

import polars as pl

from transforms.money import cents_text

NULL = pl.lit("null")


def string(value: pl.Expr) -> pl.Expr:
    """A JSON string (null stays null)."""
    escaped = value.str.replace_all("\\", "\\\\", literal=True).str.replace_all('"', '\\"', literal=True)
    return pl.concat_str(pl.lit('"'), escaped, pl.lit('"'))


def number(value: pl.Expr) -> pl.Expr:
    return value.cast(pl.String)


def money(cents: pl.Expr) -> pl.Expr:
    """A JSON number with two decimals, from integer cents."""
    return cents_text(cents)


def boolean(value: pl.Expr) -> pl.Expr:
    return pl.when(value).then(pl.lit("true")).when(value.not_()).then(pl.lit("false"))


def member(key: str, value: pl.Expr, *, keep_null: bool = False) -> pl.Expr:
    """``"key":value``; a null value drops the member, or writes JSON null with ``keep_null``."""
    if keep_null:
        value = value.fill_null(NULL)
    return pl.concat_str(pl.lit(f'"{key}":'), value)


def obj(*members: pl.Expr) -> pl.Expr:
    """A JSON object of the members that are not null."""
    return pl.concat_str(pl.lit("{"), pl.concat_str(*members, separator=",", ignore_nulls=True), pl.lit("}"))
