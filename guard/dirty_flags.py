"""The dirty-flag idiom: a local flag set after every change vouches for ``flag_modified`` under ``if flag:``.

    changed = False
    for task in due:
        state.schedule[task.name] = now      # a change in place ...
        changed = True                       # ... followed by setting a local flag
    if changed:
        flag_modified(state, "schedule")     # saved on every path on which the flag was set

Decides: which names are flags (names the function binds, declared ``global`` or ``nonlocal``
nowhere in it, assigned a true constant: ``changed = True``), which pending changes a flag vouches
for (each pending change carries the flags set to a true constant since it was made; any other
binding of the name, ``changed = False`` included, takes the name off again), and what a test of a
flag rules out: in the branch where the test says the flag is false, the paths on which it was set
after a change cannot be running, so those pending changes are dropped there. In the branch where
the flag is true the change must still be saved as anywhere else. So a change with some path to
the test on which no flag was set after it, or a ``flag_modified`` under a test of another flag,
is still reported.
"""

from __future__ import annotations

import ast

_NO_NAMES: frozenset[str] = frozenset()


def sets_true(value: ast.AST | None) -> bool:
    """Whether an assigned value is a true constant (``True``, ``1``, a non-empty string)."""
    return isinstance(value, ast.Constant) and value.value is not Ellipsis and bool(value.value)


def declared_outside(fn_node: ast.AST) -> set[str]:
    """Names declared ``global`` or ``nonlocal`` anywhere in a function (nested functions included): never flags."""
    return {name for node in ast.walk(fn_node) if isinstance(node, (ast.Global, ast.Nonlocal)) for name in node.names}


def raised(state: frozenset, name: str) -> frozenset:
    """The state after ``name = True``: every pending change now carries the flag ``name``."""
    return frozenset(("p", f[1], f[2] | {name}) if f[0] == "p" else f for f in state)


def lowered(state: frozenset, name: str) -> frozenset:
    """The state after any other binding of ``name``: no pending change carries it any more."""
    if not any(f[0] == "p" and name in f[2] for f in state):
        return state  # the common case: ``name`` is no flag
    return frozenset(("p", f[1], f[2] - {name}) if f[0] == "p" else f for f in state)


def false_names(test: ast.AST) -> tuple[frozenset[str], frozenset[str]]:
    """The names a test says are false: (in the branch where it holds, in the branch where it does not)."""
    if isinstance(test, ast.Name):
        return _NO_NAMES, frozenset({test.id})
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        holds, fails = false_names(test.operand)
        return fails, holds
    if isinstance(test, ast.BoolOp):
        parts = [false_names(value) for value in test.values]
        if isinstance(test.op, ast.And):  # holds: every operand is true
            return frozenset().union(*(holds for holds, _ in parts)), _NO_NAMES
        return _NO_NAMES, frozenset().union(*(fails for _, fails in parts))  # ``or`` fails: every operand is false
    return _NO_NAMES, _NO_NAMES


def assume_false(state: frozenset, names: frozenset[str]) -> frozenset:
    """The state in a branch where ``names`` are false: pending changes that a set flag vouches for cannot be here."""
    if not names:
        return state
    return frozenset(f for f in state if not (f[0] == "p" and f[2] & names))
