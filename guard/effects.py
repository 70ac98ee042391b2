"""What one expression or assignment does to a function's state of pending JSON changes.

Decides: which operations change a column's value in place (``obj.col[k] = v``, ``+=``, ``del``,
``.update``/``.setdefault``/``.pop``/..., nested changes, changes through a local alias or a
shallow copy), which of those SQLAlchemy sees anyway (``guard.columns.TRACKED_OPS``), what saves
a change (``flag_modified``, a helper that flags, assigning a new object; not assigning the same
object or an equal copy back), what throws it away on purpose (rollback, expire, refresh), and
when a change is lost because the name it went through is rebound. ``guard.flow`` runs these
over the statements and paths of the function.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from guard.columns import NESTED_NOTE, PLAIN, TRACKED, TRACKED_OPS
from guard.declarations import Declarations
from guard.dirty_flags import lowered
from guard.functions import ANY, Function, argument, callees
from guard.rows import RowTypes
from guard.syntax import children_first, dotted, root_name, source_text, tail

_DICT_MUTATORS = frozenset({"update", "setdefault", "pop", "popitem", "clear"})
_LIST_MUTATORS = frozenset({"append", "extend", "insert", "remove", "sort", "reverse", "pop", "clear"})
_MUTATORS = _DICT_MUTATORS | _LIST_MUTATORS
_DISCARDING = frozenset({"rollback", "expire_all", "expire", "refresh"})  # Session methods that drop changes
_SHALLOW_COPY_CALLS = frozenset({"dict", "list", "copy.copy", "copy", "sorted", "tuple"})
_ELEMENT_KEEPING_CALLS = frozenset({"list", "sorted", "reversed", "tuple"})
_NO_FLAGS: frozenset[str] = frozenset()  # a change just made: no flag has been set since




@dataclass(frozen=True)
class Origin:
    """Where an in-place change is written, and what the message says about it."""

    path: str
    line: int
    col: int
    func: str
    obj: str
    column: str
    via: str | None  # the local name the change went through
    note: str | None  # why it is lost although SQLAlchemy tracks some changes


@dataclass(frozen=True)
class Site:
    """A pending change in the function being analysed: its object and column here, and its origin."""

    key: tuple[str, str]
    origin: Origin
    call: tuple[str, str, int] | None = None  # handed over by a helper: (helper name, path, line of the call)


def _nested(refs: set) -> set:
    """What a subscript of these objects refers to: one level deeper, shared with the column."""
    return {(key, min(depth + 1, 2), False, False) for key, depth, _, _ in refs}


def _copied(refs: set, clean: bool) -> set:
    """A shallow copy of these objects: a new container whose items are still the column's."""
    return {(key, depth, True, clean) for key, depth, _, _ in refs}




class Effects:
    """The transfer functions of one function's analysis (``guard.flow.FunctionAnalysis`` runs them).

    A state is a frozenset of facts: ("p", site, flags) a pending change, ``flags`` the local names
    set to a true constant since it was made (``guard.dirty_flags``); ("a", name, key, depth, fresh)
    ``name`` refers to column ``key``'s object at ``depth`` (0 the value itself, 1+ nested), or to
    a shallow copy of it when ``fresh``; ("c", name) ``name`` may be a copy with no top-level change.
    """

    def __init__(self, fn: Function, decls: Declarations, escapes: dict[str, list]):
        self.fn, self.decls, self.escapes = fn, decls, escapes
        self.rows = RowTypes(fn, decls)
        self.sites: list[Site] = []
        self.site_ids: dict[tuple, int] = {}
        self.leaks: dict[int, str] = {}  # site → why it is lost
        self.assigned_back: dict[int, str] = {}  # site → how it was assigned back without effect
        self.handed_over: list[tuple] = []  # (param index, rest of object, site) left to the callers
        self.try_seen: list[frozenset] = []  # per enclosing try: every state an exception may leave from

    # what expressions refer to

    def _refs(self, expr: ast.AST | None, state: frozenset) -> set:
        """What ``expr`` evaluates to, as (key, depth, fresh, clean) column objects (may be several)."""
        if expr is None:
            return set()
        if isinstance(expr, ast.Attribute):
            key = self.rows.column_key(expr)
            return {(key, 0, False, False)} if key else set()
        if isinstance(expr, ast.Name):
            clean = ("c", expr.id) in state
            return {(f[2], f[3], f[4], clean) for f in state if f[0] == "a" and f[1] == expr.id}
        if isinstance(expr, ast.Subscript):
            inner = self._refs(expr.value, state)
            return _copied(inner, True) if isinstance(expr.slice, ast.Slice) else _nested(inner)
        if isinstance(expr, (ast.NamedExpr, ast.Await)):
            return self._refs(expr.value, state)
        if isinstance(expr, ast.BoolOp):
            return set().union(*(self._refs(v, state) for v in expr.values))
        if isinstance(expr, ast.IfExp):
            return self._refs(expr.body, state) | self._refs(expr.orelse, state)
        if isinstance(expr, ast.Dict):
            spread = set().union(*(self._refs(v, state) for k, v in zip(expr.keys, expr.values) if k is None))
            return _copied(spread, clean=all(k is None for k in expr.keys))
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.BitOr):
            return _copied(self._refs(expr.left, state), clean=False)
        if isinstance(expr, ast.Call):
            return self._call_refs(expr, state)
        return set()

    def _call_refs(self, call: ast.Call, state: frozenset) -> set:
        """What a call returns of a column: ``.get``/``.setdefault`` a nested value, copies a shallow copy."""
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr in ("get", "setdefault"):
            return _nested(self._refs(func.value, state))
        if isinstance(func, ast.Attribute) and func.attr == "copy" and not call.args:
            return _copied(self._refs(func.value, state), clean=True)
        if dotted(func) in _SHALLOW_COPY_CALLS and call.args:
            # dict(x) is shallow: nested values stay shared; dict(x, k=v) also changes the top level.
            return _copied(self._refs(call.args[0], state), clean=not call.keywords and len(call.args) == 1)
        return set()

    def _element_refs(self, iterable: ast.AST, state: frozenset) -> tuple[int | None, set]:
        """What a for loop's target gets: (None, refs) for the whole item, (i, refs) for tuple position i."""
        if isinstance(iterable, ast.Call):
            func, name = iterable.func, dotted(iterable.func)
            if isinstance(func, ast.Attribute) and func.attr == "values":
                return None, _nested(self._refs(func.value, state))
            if isinstance(func, ast.Attribute) and func.attr == "items":
                return 1, _nested(self._refs(func.value, state))
            if name == "enumerate" and iterable.args:
                position, refs = self._element_refs(iterable.args[0], state)
                return (1, refs) if position is None else (None, set())
            if name in _ELEMENT_KEEPING_CALLS and iterable.args:
                return self._element_refs(iterable.args[0], state)
        return None, _nested(self._refs(iterable, state))

    # transfer functions

    def _site(self, node: ast.AST, key: tuple[str, str], origin: Origin, call=None) -> int:
        """The id of the pending change made at ``node`` (the same every time the node is run)."""
        ident = (id(node), key, origin)
        if ident not in self.site_ids:
            self.site_ids[ident] = len(self.sites)
            self.sites.append(Site(key, origin, call))
        return self.site_ids[ident]

    def _via(self, container: ast.AST, state: frozenset) -> tuple[str | None, bool]:
        """The local name a change goes through, and whether that name is a shallow copy."""
        while True:
            if isinstance(container, ast.Subscript):
                container = container.value
            elif isinstance(container, ast.Call) and isinstance(container.func, ast.Attribute):
                container = container.func.value
            else:
                break
        if not isinstance(container, ast.Name):
            return None, False
        return container.id, any(f[0] == "a" and f[1] == container.id and f[4] for f in state)

    def _changed(self, state: frozenset, container: ast.AST, op: str, node: ast.AST) -> frozenset:
        """The state after an in-place change ``op`` of the object ``container`` evaluates to."""
        added = set()
        for key, depth, fresh, _ in self._refs(container, state):
            if fresh:
                if isinstance(container, ast.Name):  # the copy itself changed: it no longer equals the stored value
                    state = state - {("c", container.id)}
                continue
            kinds = self.rows.kinds.get(key, frozenset({PLAIN}))
            if any(k == TRACKED or (depth == 0 and op in TRACKED_OPS.get(k, ())) for k in kinds):
                continue  # SQLAlchemy itself sees this change
            via, shallow = self._via(container, state)
            notes = [NESTED_NOTE[k] for k in sorted(kinds) if k in NESTED_NOTE and depth > 0]
            if shallow:
                notes.append(f"{via} is a shallow copy: its nested values are still {key[0]}.{key[1]}'s")
            line, col = node.lineno, node.col_offset + 1
            origin = Origin(self.fn.path, line, col, self.fn.name, key[0], key[1], via, "; ".join(notes) or None)
            added.add(("p", self._site(node, key, origin), _NO_FLAGS))
        return state | added

    def _resolved(self, state: frozenset, obj: str, column: str | None) -> frozenset:
        """The state after ``flag_modified(obj, column)`` (column None: every column of ``obj``)."""
        def saved(site: Site) -> bool:
            return site.key[0] == obj and (column is None or site.key[1] == column)

        return frozenset(f for f in state if not (f[0] == "p" and saved(self.sites[f[1]])))

    def _leak(self, state: frozenset, reason: str, only=lambda site: True) -> frozenset:
        """Record the pending changes selected by ``only`` as lost for ``reason``; drop them from the state."""
        lost = {f for f in state if f[0] == "p" and only(self.sites[f[1]])}
        for fact in sorted(lost, key=lambda f: f[1]):
            self.leaks.setdefault(fact[1], reason)
        return state - lost

    def _bound(self, state: frozenset, name: str, refs: set, node: ast.AST) -> frozenset:
        """The state after ``name`` is bound to a value referring to ``refs``."""
        # A change pending on the old object can no longer be flagged through this name.
        if isinstance(node, (ast.For, ast.AsyncFor)):
            reason = f"before the loop at line {node.lineno} moves {name} to its next item"
        else:
            reason = f"before line {node.lineno} rebinds {name}"
        state = self._leak(state, reason, lambda s: root_name(s.key[0]) == name)
        state = lowered(state, name)  # a flag rebound no longer vouches for the changes before it
        state = frozenset(f for f in state if not (f[0] in ("a", "c") and f[1] == name))
        added = {("a", name, key, depth, fresh) for key, depth, fresh, _ in refs}
        if any(fresh and clean for _, _, fresh, clean in refs):
            added.add(("c", name))
        return state | added

    def _column_assigned(self, state: frozenset, key: tuple[str, str], refs: set, value: ast.AST | None) -> frozenset:
        """The state after ``obj.col = value``."""
        same = [r for r in refs if r[0] == key and r[1] == 0 and (not r[2] or r[3])]
        if same:
            # SQLAlchemy compares with the loaded value: the same object, or an unchanged copy, is no change.
            what = f"assigning {source_text(value)} back to {key[0]}.{key[1]}" if value is not None else "assigning it back"
            why = "is the same object, not a change" if not all(r[2] for r in same) else "is an equal copy, not a change"
            for fact in state:
                if fact[0] == "p" and self.sites[fact[1]].key == key:
                    self.assigned_back.setdefault(fact[1], f"{what} {why}")
        else:
            state = self._resolved(state, *key)
            # Names that referred to the replaced object no longer reach the column.
            state = frozenset(f for f in state if not (f[0] == "a" and f[2] == key and not f[4]))
        if isinstance(value, ast.Name):  # the name now is the column's value
            state = frozenset(f for f in state if not (f[0] in ("a", "c") and f[1] == value.id))
            state |= {("a", value.id, key, 0, False)}
        return state

    def _call(self, state: frozenset, call: ast.Call) -> frozenset:
        """The state after a call: a mutating method, setattr, flag_modified or a helper."""
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr in _MUTATORS:
            state = self._changed(state, func.value, func.attr, call)
        if isinstance(func, ast.Attribute) and func.attr in _DISCARDING:
            # A rollback, expire or refresh throws the in-memory change away on purpose: nothing is lost.
            everything = func.attr in ("rollback", "expire_all") or not call.args
            obj = None if everything else source_text(call.args[0])
            state = frozenset(f for f in state if not (f[0] == "p" and (everything or self.sites[f[1]].key[0] == obj)))
        if tail(func) == "setattr" and len(call.args) == 3:
            obj, name, value = call.args
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                node = ast.Attribute(value=obj, attr=name.value, ctx=ast.Store())
                # A node made here lives briefly: decide without the per-node cache.
                key = self.rows.decided_key(node) if name.value in self.decls.json_attrs else None
                if key:
                    state = self._column_assigned(state, key, self._refs(value, state), value)
        for params, shift, entries in callees(call, self.decls.flag_summaries):
            for index, column in entries:
                target = argument(call, params, shift, index)
                if target is None:
                    continue
                if isinstance(column, tuple):
                    given = argument(call, params, shift, column[1])
                    column = given.value if isinstance(given, ast.Constant) and isinstance(given.value, str) else ANY
                state = self._resolved(state, source_text(target), None if column == ANY else column)
        for params, shift, handed in callees(call, self.escapes):
            for index, rest, column, origin in handed:
                target = argument(call, params, shift, index)
                if target is None or (isinstance(target, ast.Name) and target.id in self.rows.new_objects):
                    continue
                key = (source_text(target) + rest, column)
                helper = tail(func) or "?"
                state |= {("p", self._site(call, key, origin, (helper, self.fn.path, call.lineno)), _NO_FLAGS)}
        return state

    def _effects(self, expr: ast.AST | None, state: frozenset) -> frozenset:
        """The state after evaluating an expression: its calls and walrus assignments, innermost first."""
        if expr is None:
            return state
        order = self.decls.evaluation_order.get(id(expr))
        if order is None:  # loops and finally blocks run the same expressions again: walk each once
            order = self.decls.evaluation_order[id(expr)] = children_first(expr)
        for node in order:
            if isinstance(node, ast.NamedExpr):
                state = self._bound(state, node.target.id, self._refs(node.value, state), node)
            else:
                state = self._call(state, node)
        return state

    def _store(self, state: frozenset, target: ast.AST, value: ast.AST | None, refs: set, node: ast.AST) -> frozenset:
        """The state after storing a value into an assignment target."""
        if isinstance(target, ast.Name):
            return self._bound(state, target.id, refs, node)
        if isinstance(target, ast.Attribute):
            state = self._effects(target.value, state)
            key = self.rows.column_key(target)
            return self._column_assigned(state, key, refs, value) if key else state
        if isinstance(target, ast.Subscript):
            state = self._effects(target.slice, self._effects(target.value, state))
            return self._changed(state, target.value, "setitem", target)
        if isinstance(target, ast.Starred):
            return self._store(state, target.value, None, set(), node)
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                state = self._store(state, element, None, set(), node)
        return state
