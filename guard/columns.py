"""Which type expressions are JSON, and how SQLAlchemy tracks each kind of JSON column.

Decides: whether ``Column(...)``/``mapped_column(...)``/``Field(sa_column=...)`` or a type alias
declares a JSON column, and its kind: PLAIN (``JSON``/``JSONB``: no change in place is seen),
MUTABLE_DICT / MUTABLE_LIST (``sqlalchemy.ext.mutable``: top-level changes are seen, nested ones
are not) or TRACKED (sqlalchemy-json's nested types: every change is seen). A column that comes
out TRACKED, or a top-level change of a Mutable* column, is never reported (see ``TRACKED_OPS``).
"""

from __future__ import annotations

import ast

from guard.syntax import tail

# How SQLAlchemy tracks a JSON column: not at all, top-level only (MutableDict / MutableList from
# sqlalchemy.ext.mutable), or everywhere (sqlalchemy-json's nested mutable types).
PLAIN, MUTABLE_DICT, MUTABLE_LIST, TRACKED = "JSON", "MutableDict", "MutableList", "tracked"

JSON_TYPES = frozenset({"JSON", "JSONB"})
_COLUMN_CALLS = frozenset({"Column", "mapped_column"})

# The operations sqlalchemy.ext.mutable intercepts, on the column's top-level object only.
TRACKED_OPS = {
    MUTABLE_DICT: frozenset({"setitem", "delitem", "update", "setdefault", "pop", "popitem", "clear", "ior"}),
    MUTABLE_LIST: frozenset(
        {"setitem", "delitem", "pop", "append", "extend", "iadd", "insert", "remove", "clear", "sort", "reverse"}
    ),
}
# What a finding says when SQLAlchemy tracks the column, but not at the depth that changed.
NESTED_NOTE = {
    MUTABLE_DICT: "MutableDict tracks only top-level keys",
    MUTABLE_LIST: "MutableList tracks only its own items",
}


def _wrapper_kind(call: ast.Call, aliases: dict[str, str]) -> str | None:
    """The tracking a mutable wrapper call gives a JSON type, or None if it is no such wrapper."""
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr == "as_mutable" and tail(func.value) in (MUTABLE_DICT, MUTABLE_LIST):
        if any(type_kind(arg, aliases) for arg in call.args):
            return tail(func.value)
    if tail(func) == "mutable_json_type":  # sqlalchemy-json: nested=True tracks every level
        nested = next((k.value for k in call.keywords if k.arg == "nested"), None)
        return TRACKED if isinstance(nested, ast.Constant) and nested.value is True else MUTABLE_DICT
    return None


def type_kind(expr: ast.AST, aliases: dict[str, str]) -> str | None:
    """How SQLAlchemy tracks a column of this type expression, or None if it is not a JSON type."""
    found: set[str] = set()
    for node in ast.walk(expr):
        if isinstance(node, ast.Call):
            wrapper = _wrapper_kind(node, aliases)
            if wrapper:
                found.add(wrapper)
        name = tail(node)
        if name in JSON_TYPES:
            found.add(PLAIN)
        elif name == "NestedMutableJson":
            found.add(TRACKED)
        elif name == "MutableJson":
            found.add(MUTABLE_DICT)
        elif name in aliases:
            found.add(aliases[name])
    # A wrapper decides over the plain type it wraps; the most tracking wins (precision first).
    return next((kind for kind in (TRACKED, MUTABLE_DICT, MUTABLE_LIST, PLAIN) if kind in found), None)


def _column_type_args(call: ast.Call) -> list[ast.AST]:
    """The type argument of ``Column(...)``/``mapped_column(...)``: first non-string positional or ``type_``."""
    positional = [a for a in call.args if not (isinstance(a, ast.Constant) and isinstance(a.value, str))]
    return positional[:1] + [k.value for k in call.keywords if k.arg == "type_"]


def column_call_kind(value: ast.AST, aliases: dict[str, str]) -> tuple[bool, str | None]:
    """Whether ``value`` declares a column (also SQLModel's ``Field(sa_column=...)``), and its JSON kind."""
    if not isinstance(value, ast.Call):
        return False, None
    if tail(value.func) in _COLUMN_CALLS:
        kinds = [type_kind(arg, aliases) for arg in _column_type_args(value)]
        return True, next((k for k in kinds if k), None)
    for keyword in value.keywords:
        if keyword.arg == "sa_column":
            return column_call_kind(keyword.value, aliases)
        if keyword.arg == "sa_type":
            return True, type_kind(keyword.value, aliases)
    return False, None

