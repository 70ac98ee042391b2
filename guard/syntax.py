"""Small questions asked of syntax trees: names, dotted references, annotations, evaluation order.

Decides nothing about JSON or SQLAlchemy; every other guard module builds on these answers.
"""

from __future__ import annotations

import ast
import re
from typing import Iterator

_ROOT = re.compile(r"[A-Za-z_]\w*")


def tail(node: ast.AST | None) -> str | None:
    """The last name of a dotted reference (``sa.JSON`` → ``JSON``), or None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def dotted(node: ast.AST) -> str | None:
    """A dotted reference as text (``copy.deepcopy``), or None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = dotted(node.value)
        return f"{head}.{node.attr}" if head else None
    return None


def root_name(text: str) -> str:
    """The name an object expression starts from (``self.user`` → ``self``)."""
    match = _ROOT.match(text)
    return match.group(0) if match else text


def source_text(node: ast.AST) -> str:
    """Source text of an expression, as ``flag_modified`` would be written with it."""
    return ast.unparse(node)


def children_first(node: ast.AST) -> list[ast.AST]:
    """Calls and walrus assignments inside an expression, innermost first; lambdas run later, if ever.

    Iterative, so a very long expression (a generated string concatenation) cannot hit the recursion limit.
    """
    order: list[ast.AST] = []
    stack: list[tuple[ast.AST, bool]] = [(node, False)]
    while stack:
        current, expanded = stack.pop()
        if expanded:
            if isinstance(current, (ast.Call, ast.NamedExpr)):
                order.append(current)
            continue
        stack.append((current, True))
        children = [c for c in ast.iter_child_nodes(current) if not isinstance(c, _NOTHING_TO_RUN)]
        stack.extend((child, False) for child in reversed(children))
    return order


# Nodes with no call inside to run now: leaves, operators, and code that runs later if ever.
_NOTHING_TO_RUN = (
    ast.Name, ast.Constant, ast.expr_context, ast.operator, ast.boolop, ast.unaryop, ast.cmpop,
    ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
)
# Nodes whose children hold no call, attribute or name to collect.
NO_CHILDREN = (ast.expr_context, ast.operator, ast.boolop, ast.unaryop, ast.cmpop, ast.Constant)


def top_level_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """A module's own statements, also those under module-level if/try/with blocks."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, (ast.If, ast.Try, ast.With)):
            for block in ("body", "orelse", "finalbody"):
                yield from top_level_statements(getattr(stmt, block, []))
            for handler in getattr(stmt, "handlers", []):
                yield from top_level_statements(handler.body)


def bound_at_top(body: list[ast.stmt]) -> set[str]:
    """Names a module binds at its top level: assignments, imports, definitions."""
    names: set[str] = set()
    for stmt in top_level_statements(body):
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in stmt.names}
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(stmt.name)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for target in stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def without_optional(node: ast.AST) -> ast.AST:
    """``X | None`` / ``Optional[X]`` / ``"X"`` as ``X``: the same column type."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            return without_optional(ast.parse(node.value, mode="eval").body)
        except SyntaxError:
            return node
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        if isinstance(node.right, ast.Constant) and node.right.value is None:
            return without_optional(node.left)
        if isinstance(node.left, ast.Constant) and node.left.value is None:
            return without_optional(node.right)
    if isinstance(node, ast.Subscript) and tail(node.value) == "Optional":
        return without_optional(node.slice)
    return node


def annotation_key(node: ast.AST) -> str:
    """An annotation as comparable text (``dict[str, Any]``, spaces and ``typing.`` dropped)."""
    return source_text(without_optional(node)).replace(" ", "").replace("typing.", "")


def mapped_inner(annotation: ast.AST) -> ast.AST | None:
    """``X`` from ``Mapped[X]`` (also quoted), or None when the annotation is not ``Mapped``."""
    annotation = without_optional(annotation)
    if isinstance(annotation, ast.Subscript) and tail(annotation.value) == "Mapped":
        return annotation.slice
    return None

