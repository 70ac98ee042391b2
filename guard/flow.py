"""Whether a pending change reaches the end of its function unsaved, over every path.

Decides: how statements combine (if/else joined, loops to a fixed point, try/except/finally with
an exception possible at any statement, match, return, raise, break, continue), where a change
still pending is lost (a return, the end of the function) and where it is handed to the callers
instead (a change on a parameter of a helper: ``guard.lint`` runs rounds until no summary
changes). A false negative or positive about *paths* (flag_modified in one branch only, an early
return, a dirty flag tested after a loop) is decided here; what a single statement does is
``guard.effects``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Iterable

from guard.dirty_flags import assume_false, declared_outside, false_names, raised, sets_true
from guard.effects import Effects
from guard.functions import callees
from guard.syntax import root_name

@dataclass
class _Flow:
    """The outcome of running statements: the state falling through, and those leaving otherwise."""

    fall: frozenset | None
    returns: list[tuple[int, frozenset]] = field(default_factory=list)
    breaks: list[frozenset] = field(default_factory=list)
    continues: list[frozenset] = field(default_factory=list)

    def absorb(self, other: _Flow) -> None:
        """Take over the other flow's returns, breaks and continues."""
        self.returns += other.returns
        self.breaks += other.breaks
        self.continues += other.continues


def _union(states: Iterable[frozenset | None]) -> frozenset | None:
    """The join of the reachable states (None when none is reachable)."""
    reachable = [s for s in states if s is not None]
    return frozenset().union(*reachable) if reachable else None


class FunctionAnalysis(Effects):
    """One function's in-place changes, run statement by statement (a forward may-analysis)."""

    outside_names: set[str] | None = None  # the function's global/nonlocal names, once a flag is set

    def run(self) -> list[tuple]:
        """Analyse the function; returns what it hands over to its callers (leaks are in ``self.leaks``)."""
        flow = self._block(self.fn.node.body, frozenset())
        exits = [(f"before the end of {self.fn.name}()", flow.fall)]
        exits += [(f"before the return at line {line}", state) for line, state in flow.returns]
        for reason, state in exits:
            if state is not None:
                self._exit(state, reason)
        return self.handed_over

    def _exit(self, state: frozenset, reason: str) -> None:
        """Hand the pending changes on a parameter to the callers; the rest are lost."""
        fn = self.fn
        for fact in sorted((f for f in state if f[0] == "p"), key=lambda f: f[1]):
            site = self.sites[fact[1]]
            root = root_name(site.key[0])
            # self.col in a model's own method counts here (the method is where the fix belongs).
            if root in fn.params and root != fn.self_name and fn.name in self.decls.called:
                entry = (fn.params.index(root), site.key[0][len(root):], site.key[1], site.origin)
                if entry not in self.handed_over:
                    self.handed_over.append(entry)
            else:
                self.leaks.setdefault(fact[1], reason)

    def _block(self, body: list[ast.stmt], state: frozenset | None) -> _Flow:
        """Run statements in order until one leaves (return, raise, break, continue)."""
        flow = _Flow(state)
        for stmt in body:
            if flow.fall is None:
                break
            if self.try_seen and not self._only_flags(stmt):
                # An exception raised by this statement reaches the handlers with the state before it.
                self.try_seen[-1] |= flow.fall
            step = self._statement(stmt, flow.fall)
            flow.fall = step.fall
            flow.absorb(step)
        return flow

    def _only_flags(self, stmt: ast.stmt) -> bool:
        """Whether a statement is just a ``flag_modified`` (or flagging helper) call, which does not raise."""
        return (
            isinstance(stmt, ast.Expr)
            and isinstance(stmt.value, ast.Call)
            and any(True for _ in callees(stmt.value, self.decls.flag_summaries))
        )

    def _statement(self, stmt: ast.stmt, state: frozenset) -> _Flow:
        """Run one statement."""
        handler = getattr(self, "_run_" + type(stmt).__name__, None)
        if handler is not None:
            return handler(stmt, state)
        for child in ast.iter_child_nodes(stmt):  # simple statements: only their expressions matter
            if isinstance(child, ast.expr):
                state = self._effects(child, state)
        return _Flow(state)

    def _run_Assign(self, stmt: ast.Assign, state: frozenset) -> _Flow:
        """``a = b = value``: the value's effects, then each target in turn."""
        state = self._effects(stmt.value, state)
        refs = self._refs(stmt.value, state)
        for target in stmt.targets:
            state = self._store(state, target, stmt.value, refs, stmt)
            state = self._flag_set(state, target, stmt.value)
        return _Flow(state)

    def _run_AnnAssign(self, stmt: ast.AnnAssign, state: frozenset) -> _Flow:
        """``name: T = value`` (a bare annotation binds nothing)."""
        if stmt.value is None:
            return _Flow(state)
        state = self._effects(stmt.value, state)
        state = self._store(state, stmt.target, stmt.value, self._refs(stmt.value, state), stmt)
        return _Flow(self._flag_set(state, stmt.target, stmt.value))

    def _flag_set(self, state: frozenset, target: ast.AST, value: ast.AST) -> frozenset:
        """After ``flag = True`` on a local name: the pending changes carry the flag (``guard.dirty_flags``)."""
        if not (isinstance(target, ast.Name) and sets_true(value) and target.id in self.rows.locals):
            return state
        if self.outside_names is None:  # looked up once, and only in functions that set a flag
            self.outside_names = declared_outside(self.fn.node)
        return state if target.id in self.outside_names else raised(state, target.id)

    def _run_AugAssign(self, stmt: ast.AugAssign, state: frozenset) -> _Flow:
        """``x op= v``: an item set, an in-place ``|=``/``+= [..]``, or a rebinding."""
        state = self._effects(stmt.value, state)
        target = stmt.target
        if isinstance(target, ast.Subscript):  # x[k] += v: a __setitem__ on x
            state = self._effects(target.slice, self._effects(target.value, state))
            return _Flow(self._changed(state, target.value, "setitem", target))
        # |= on a dict and += [..] on a list change the object in place, then assign it back.
        in_place = isinstance(stmt.op, ast.BitOr) or (
            isinstance(stmt.op, ast.Add) and isinstance(stmt.value, (ast.List, ast.ListComp, ast.Tuple))
        )
        op = "ior" if isinstance(stmt.op, ast.BitOr) else "iadd"
        if isinstance(target, ast.Attribute):
            state = self._effects(target.value, state)
            key = self.rows.column_key(target)
            if key and in_place:
                return _Flow(self._changed(state, target, op, stmt))
            return _Flow(self._column_assigned(state, key, set(), None) if key else state)
        if isinstance(target, ast.Name):
            if in_place and self._refs(target, state):
                return _Flow(self._changed(state, target, op, stmt))
            return _Flow(self._bound(state, target.id, set(), stmt))
        return _Flow(state)

    def _run_Delete(self, stmt: ast.Delete, state: frozenset) -> _Flow:
        """``del x[k]`` changes ``x``; ``del name`` unbinds it."""
        for target in stmt.targets:
            if isinstance(target, ast.Subscript):
                state = self._effects(target.slice, self._effects(target.value, state))
                state = self._changed(state, target.value, "delitem", target)
            else:
                state = self._store(state, target, None, set(), stmt)
        return _Flow(state)

    def _run_Return(self, stmt: ast.Return, state: frozenset) -> _Flow:
        """A return: its value's effects, then the function's end."""
        return _Flow(None, returns=[(stmt.lineno, self._effects(stmt.value, state))])

    def _run_Raise(self, stmt: ast.Raise, state: frozenset) -> _Flow:
        """A raise ends the path."""
        # An exception leaving the function rolls the transaction back: nothing would be saved anyway.
        return _Flow(None)

    def _run_Break(self, stmt: ast.Break, state: frozenset) -> _Flow:
        """A break leaves the loop."""
        return _Flow(None, breaks=[state])

    def _run_Continue(self, stmt: ast.Continue, state: frozenset) -> _Flow:
        """A continue goes back to the loop's head."""
        return _Flow(None, continues=[state])

    def _run_If(self, stmt: ast.If, state: frozenset) -> _Flow:
        """Both branches from the same state, joined; a branch where a dirty flag is false drops what it vouches for."""
        state = self._effects(stmt.test, state)
        false_if_holds, false_if_fails = false_names(stmt.test)
        then = self._block(stmt.body, assume_false(state, false_if_holds))
        other = self._block(stmt.orelse, assume_false(state, false_if_fails))
        flow = _Flow(_union([then.fall, other.fall]))
        flow.absorb(then)
        flow.absorb(other)
        return flow

    def _loop(self, stmt: ast.For | ast.While, state: frozenset, enter, endless: bool) -> _Flow:
        """A loop: the body's end states joined into the head until nothing new appears."""
        head = state
        while True:
            body = self._block(stmt.body, enter(head))
            grown = head.union(body.fall or frozenset(), *body.continues)
            if grown == head:
                break
            head = grown
        if endless:
            done = None
        elif isinstance(stmt, ast.While):
            done = self._effects(stmt.test, head)
        elif isinstance(stmt.iter, (ast.Tuple, ast.List, ast.Set)) and stmt.iter.elts:
            done = _union([body.fall, *body.continues])  # a non-empty literal runs the body at least once
        else:
            done = head
        orelse = self._block(stmt.orelse, done)
        flow = _Flow(_union([orelse.fall, *body.breaks]), returns=body.returns + orelse.returns)
        flow.breaks, flow.continues = orelse.breaks, orelse.continues
        return flow

    def _run_For(self, stmt: ast.For, state: frozenset) -> _Flow:
        """A for loop; each turn binds the target to the next item."""
        state = self._effects(stmt.iter, state)

        def enter(head: frozenset) -> frozenset:
            position, refs = self._element_refs(stmt.iter, head)
            target = stmt.target
            if position is not None and isinstance(target, ast.Tuple) and position < len(target.elts):
                for i, element in enumerate(target.elts):
                    head = self._store(head, element, None, refs if i == position else set(), stmt)
                return head
            return self._store(head, target, None, refs if position is None else set(), stmt)

        return self._loop(stmt, state, enter, endless=False)

    _run_AsyncFor = _run_For

    def _run_While(self, stmt: ast.While, state: frozenset) -> _Flow:
        """A while loop; ``while True`` leaves only by break."""
        endless = isinstance(stmt.test, ast.Constant) and bool(stmt.test.value)
        return self._loop(stmt, state, lambda head: self._effects(stmt.test, head), endless)

    def _run_With(self, stmt: ast.With, state: frozenset) -> _Flow:
        """A with block: its context expressions, then its body."""
        for item in stmt.items:
            state = self._effects(item.context_expr, state)
            if item.optional_vars is not None:
                state = self._store(state, item.optional_vars, None, set(), stmt)
        return self._block(stmt.body, state)

    _run_AsyncWith = _run_With

    def _run_Try(self, stmt: ast.Try, state: frozenset) -> _Flow:
        """try/except/else/finally."""
        self.try_seen.append(state)
        body = self._block(stmt.body, state)
        seen = self.try_seen.pop()
        if self.try_seen:
            self.try_seen[-1] |= seen
        # An exception may leave the body at any statement that can raise: a handler starts from all of them.
        caught = seen
        orelse = self._block(stmt.orelse, body.fall)
        handlers = []
        for handler in stmt.handlers:
            entry = self._bound(caught, handler.name, set(), handler) if handler.name else caught
            handlers.append(self._block(handler.body, entry))
        flow = _Flow(_union([orelse.fall, *(h.fall for h in handlers)]))
        for part in (body, orelse, *handlers):
            flow.absorb(part)
        return self._finally(stmt.finalbody, flow) if stmt.finalbody else flow

    _run_TryStar = _run_Try

    def _finally(self, final: list[ast.stmt], flow: _Flow) -> _Flow:
        """Run a finally block on every way out of its try: falling through, return, break, continue."""
        out = _Flow(None)
        if flow.fall is not None:
            done = self._block(final, flow.fall)
            out.fall = done.fall
            out.absorb(done)
        for line, state in flow.returns:
            done = self._block(final, state)
            out.absorb(done)
            if done.fall is not None:
                out.returns.append((line, done.fall))
        for states, attr in ((flow.breaks, "breaks"), (flow.continues, "continues")):
            for state in states:
                done = self._block(final, state)
                out.absorb(done)
                if done.fall is not None:
                    getattr(out, attr).append(done.fall)
        return out

    def _run_Match(self, stmt: ast.Match, state: frozenset) -> _Flow:
        """A match statement: each case from the subject's state; no case may match unless one is ``case _``."""
        state = self._effects(stmt.subject, state)
        flow = _Flow(None)
        falls, exhaustive = [], False
        for case in stmt.cases:
            entry = state
            for node in ast.walk(case.pattern):
                name = getattr(node, "name", None) or getattr(node, "rest", None)
                if isinstance(name, str):
                    entry = self._bound(entry, name, set(), stmt)
            entry = self._effects(case.guard, entry)
            done = self._block(case.body, entry)
            falls.append(done.fall)
            flow.absorb(done)
            if isinstance(case.pattern, ast.MatchAs) and case.pattern.pattern is None and case.guard is None:
                exhaustive = True
        flow.fall = _union(falls + ([] if exhaustive else [state]))
        return flow

    def _run_FunctionDef(self, stmt: ast.stmt, state: frozenset) -> _Flow:
        """A nested definition only binds its name here."""
        return _Flow(self._bound(state, stmt.name, set(), stmt))  # its body is analysed on its own

    _run_AsyncFunctionDef = _run_ClassDef = _run_FunctionDef
