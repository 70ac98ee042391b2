"""Which functions are analysed, and which helpers flag their arguments.

Decides: the functions and classes of every module (found through statements only), which
function bodies are walked at all (only those whose text names a JSON column, ``flag_modified``,
or a helper that flags or changes one: the run's main saving on a large tree), and each helper's
flag summary: which of its parameters' columns it passes to ``flag_modified``, directly or
through other helpers. A call of such a helper counts as ``flag_modified`` in its caller
(``guard.effects``), so a change saved through a helper is not reported.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from guard.discovery import Module
from guard.syntax import NO_CHILDREN, tail

ANY = "*"  # flag_modified with a column name the analysis cannot read: treat as every column
# SQLAlchemy's flag_modified(instance, key) as a helper summary: it flags parameter 0's column named by parameter 1.
_FLAG_MODIFIED = (("instance", "key"), 0, frozenset({(0, ("param", 1))}))


@dataclass
class Function:
    """A function or method of the scanned code, with what its own body holds (filled in only if walked)."""

    node: ast.FunctionDef | ast.AsyncFunctionDef
    module: Module
    class_node: ast.ClassDef | None  # the class a method is defined in
    params: list[str]
    self_name: str | None  # the instance parameter of a method
    shift: int  # 1 when called as obj.method(...) with obj as the first parameter
    calls: list[ast.Call] = field(default_factory=list)
    attrs: set[str] = field(default_factory=set)
    call_names: set[str] = field(default_factory=set)
    assigns: list[ast.Assign | ast.AnnAssign] = field(default_factory=list)
    stores: list[ast.Name] = field(default_factory=list)  # every name bound or deleted

    @property
    def name(self) -> str:
        """The function's name."""
        return self.node.name

    @property
    def path(self) -> str:
        """The file it is defined in."""
        return self.module.path


def _function(node: ast.FunctionDef | ast.AsyncFunctionDef, module: Module, class_node: ast.ClassDef | None) -> Function:
    """A function with its parameters (what its body holds is filled in by ``_filled``)."""
    args = node.args
    params = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    decorators = {tail(d) for d in node.decorator_list}
    is_method = class_node is not None and "staticmethod" not in decorators
    self_name = params[0] if is_method and params and "classmethod" not in decorators else None
    return Function(node, module, class_node, params, self_name, 1 if is_method and params else 0)


@dataclass
class Outline:
    """The statements of every module: classes, functions, mapper calls; no expression walked yet."""

    classes: list[ast.ClassDef] = field(default_factory=list)
    class_paths: dict[int, str] = field(default_factory=dict)  # id(ClassDef) → its file
    functions: list[Function] = field(default_factory=list)
    by_module: dict[str, list[Function]] = field(default_factory=dict)
    mapper_calls: list[ast.Call] = field(default_factory=list)
    # file → local name → (relative level, module, imported name or None for ``import module``)
    imports: dict[str, dict[str, tuple[int, str, str | None]]] = field(default_factory=dict)


_STATEMENT_BLOCKS = ("body", "orelse", "finalbody", "handlers", "cases")
_COMPOUND = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try, ast.TryStar, ast.Match,
             ast.ExceptHandler, ast.match_case)


def outline_module(module: Module, outline: Outline) -> None:
    """Classes and functions of a module, found through statements only (cheap: no expression is visited)."""
    functions = outline.by_module.setdefault(module.path, [])
    imports = outline.imports.setdefault(module.path, {})
    stack: list[tuple[ast.AST, ast.ClassDef | None]] = [(stmt, None) for stmt in module.tree.body]
    while stack:
        node, class_node = stack.pop()
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                imports[alias.asname or alias.name] = (node.level, node.module or "", alias.name)
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                imports[local] = (0, alias.name if alias.asname else local, None)
            continue
        if isinstance(node, ast.ClassDef):
            outline.classes.append(node)
            outline.class_paths[id(node)] = module.path
            stack.extend((stmt, node) for stmt in node.body)
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            fn = _function(node, module, class_node)
            functions.append(fn)
            stack.extend((stmt, None) for stmt in node.body)
            continue
        if isinstance(node, _COMPOUND):
            for block in _STATEMENT_BLOCKS:
                stack.extend((child, class_node) for child in getattr(node, block, ()))
        elif isinstance(node, (ast.Expr, ast.Assign)):
            value = node.value
            if isinstance(value, ast.Call) and tail(value.func) in ("map_imperatively", "mapper"):
                outline.mapper_calls.append(value)
    outline.functions += functions


def _filled(fn: Function) -> None:
    """Fill in what a function's own body holds: calls, attribute names, assignments, bound names.

    Iterative (deep expressions must not hit the recursion limit); functions and classes defined
    inside are left to their own entries, lambdas run later if ever.
    """
    stack: list[ast.AST] = list(fn.node.body)
    push = stack.append
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is ast.FunctionDef or kind is ast.AsyncFunctionDef or kind is ast.ClassDef or kind is ast.Lambda:
            continue
        if kind is ast.Call:
            fn.calls.append(node)
            name = tail(node.func)
            if name:
                fn.call_names.add(name)
        elif kind is ast.Attribute:
            fn.attrs.add(node.attr)
        elif kind is ast.Name:
            if type(node.ctx) is not ast.Load:
                fn.stores.append(node)
            continue
        elif kind is ast.Assign or kind is ast.AnnAssign:
            fn.assigns.append(node)
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, NO_CHILDREN):
                push(child)


_CALLED = re.compile(r"(?<![\w.]def )\b([A-Za-z_]\w*)\s*\(")


def _source_of(fn: Function, lines: list[str]) -> str:
    """The text of a function's own lines."""
    return "\n".join(lines[fn.node.lineno - 1 : fn.node.end_lineno])


def _matches(pattern: re.Pattern | None, text: str) -> bool:
    """Whether the pattern occurs in the text (no pattern: never)."""
    return pattern is not None and pattern.search(text) is not None


def _words(names: Iterable[str], suffix: str = "") -> re.Pattern | None:
    """A regex finding any of the names as a whole word (followed by ``suffix``), or None for no names."""
    names = sorted(set(names))
    return re.compile(r"\b(?:" + "|".join(map(re.escape, names)) + r")\b" + suffix) if names else None


def argument(call: ast.Call, params: tuple[str, ...] | list[str], shift: int, index: int) -> ast.AST | None:
    """The expression a call passes for the callee's parameter ``index`` (the receiver for ``self``)."""
    if shift and index == 0:
        return call.func.value if isinstance(call.func, ast.Attribute) else None
    position = index - shift
    positional = call.args
    if position < len(positional) and not any(isinstance(a, ast.Starred) for a in positional[: position + 1]):
        return positional[position]
    name = params[index] if index < len(params) else None
    return next((k.value for k in call.keywords if k.arg == name), None)



def walked_functions(
    modules: list[Module], outline: Outline, json_attrs: Iterable[str], flag_names: set[str]
) -> tuple[list[Function], dict[str, list]]:
    """The functions whose bodies can matter, filled in, and the flag summaries of their names.

    The rest are never walked (the run's main saving). A function matters when its text names a
    JSON column or flag_modified, or calls a function that flags its argument or changes a JSON
    column, directly or through such a function (rounds).
    """
    json_attrs = set(json_attrs)
    by_path = {module.path: module for module in modules}
    sources: dict[int, str] = {}
    split: dict[str, list[str]] = {}

    def source(fn: Function) -> str:
        """A function's own text (a module split into lines once)."""
        if id(fn.node) not in sources:
            lines = split.setdefault(fn.path, by_path[fn.path].lines)
            sources[id(fn.node)] = _source_of(fn, lines)
        return sources[id(fn.node)]

    mentions = _words([*json_attrs, *flag_names])
    # A module's text is searched first, so most modules are never split into functions at all.
    todo = [
        fn for module in modules if _matches(mentions, module.text)
        for fn in outline.by_module[module.path] if _matches(mentions, source(fn))
    ]
    filled: list[Function] = []
    summaries = flag_summaries(filled, flag_names)
    module_calls: dict[str, set[str]] = {}
    function_calls: dict[int, set[str]] = {}
    helpers: set[str] = set()
    while todo:
        for fn in todo:
            _filled(fn)
        filled += todo
        done = {id(fn.node) for fn in filled}
        summaries = flag_summaries(filled, flag_names)
        # Functions a caller's outcome depends on: those that flag, change a column, or call such a function.
        grown = True
        while grown:
            before = len(helpers)
            helpers |= {n for n in summaries if n not in flag_names}
            helpers |= {fn.name for fn in filled if fn.attrs & json_attrs or fn.call_names & helpers}
            grown = len(helpers) != before
        helpers = {name for name in helpers if not name.startswith("__")}  # dunders are not called by name
        todo = []
        for module in modules:
            if module.path not in module_calls:
                module_calls[module.path] = set(_CALLED.findall(module.text))
            if not module_calls[module.path] & helpers:
                continue
            for fn in outline.by_module[module.path]:
                if id(fn.node) not in done:
                    if id(fn.node) not in function_calls:
                        function_calls[id(fn.node)] = set(_CALLED.findall(source(fn)))
                    if function_calls[id(fn.node)] & helpers:
                        todo.append(fn)
    return filled, summaries


def callees(call: ast.Call, summaries: dict[str, list]) -> Iterator[tuple]:
    """The summaries a call may run: plain functions by name; methods and module functions by attribute."""
    func = call.func
    if isinstance(func, ast.Name):
        for params, shift, entries in summaries.get(func.id, ()):
            if shift == 0:
                yield params, shift, entries
    elif isinstance(func, ast.Attribute):
        yield from summaries.get(func.attr, ())


def flag_summaries(functions: list[Function], flag_names: set[str]) -> dict[str, list]:
    """For each function name: (params, shift, {(param index, column or ("param", i) or ANY)}) it flags."""
    entries: dict[int, set] = {id(fn.node): set() for fn in functions}
    summaries: dict[str, list] = {}
    changed = True
    while changed:
        summaries = {name: [_FLAG_MODIFIED] for name in flag_names}
        for fn in functions:
            if entries[id(fn.node)]:
                summaries.setdefault(fn.name, []).append((tuple(fn.params), fn.shift, frozenset(entries[id(fn.node)])))
        changed = False
        for fn in functions:
            for call in fn.calls:
                for flagged in _flags_passed_on(fn, call, summaries):
                    if flagged not in entries[id(fn.node)]:
                        entries[id(fn.node)].add(flagged)
                        changed = True
    return summaries


def _flags_passed_on(fn: Function, call: ast.Call, summaries: dict[str, list]) -> Iterator[tuple]:
    """The (parameter, column) pairs of ``fn`` that one of its calls flags."""
    for params, shift, entries in callees(call, summaries):
        for index, column in entries:
            target = argument(call, params, shift, index)
            if not (isinstance(target, ast.Name) and target.id in fn.params):
                continue
            if isinstance(column, tuple):
                given = argument(call, params, shift, column[1])
                if isinstance(given, ast.Constant) and isinstance(given.value, str):
                    column = given.value
                elif isinstance(given, ast.Name) and given.id in fn.params:
                    column = ("param", fn.params.index(given.id))
                else:
                    column = ANY
            yield fn.params.index(target.id), column
