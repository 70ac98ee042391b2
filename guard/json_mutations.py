"""Lost JSON writes (JSN001): SQLAlchemy JSON column values changed in place and never flagged.

SQLAlchemy writes a JSON attribute only when it is assigned a value that compares unequal to the
loaded one, or after ``flag_modified(obj, "col")``. Changing the loaded dict or list in place is
invisible to it, and so is assigning the same object (or an unchanged shallow copy) back. This
module finds such changes statically, with ``ast`` only (the scanned code is never imported):

1. declarations, over the whole scanned tree: which attribute names are JSON columns and how
   SQLAlchemy tracks them (``MutableDict`` sees top-level keys only), which classes exist, which
   helpers call ``flag_modified`` on an argument;
2. per function, a forward may-analysis over the statements: an in-place change starts a pending
   change, ``flag_modified`` or assigning a new object ends it; one still pending at a return, at
   the end of the function, or when its object's name is rebound is a lost write;
3. a change pending on a helper's parameter is handed to the helper's callers (rounds until no
   summary changes), so a helper whose every caller flags the object is not reported.

Precision comes first (a check people learn to ignore protects nothing): an object is left alone
when the code says it is not a loaded row: a new object (a constructor call; a new model's whole
value is inserted), a module-level object, or one annotated (parameter, local, or the class's own
attribute annotation) as a class that does not declare that column or that the scanned code does
not declare at all. Same-named classes (an ORM ``User`` and an API schema ``User``) are told apart
through the file's imports. Only functions whose text names a JSON column, ``flag_modified`` or a
relevant helper are walked, which keeps a large tree fast.
"""

from __future__ import annotations

import ast
import fnmatch
import gc
import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

CODE = "JSN001"
PARSE_ERROR = "E999"

# How SQLAlchemy tracks a JSON column: not at all, top-level only (MutableDict / MutableList from
# sqlalchemy.ext.mutable), or everywhere (sqlalchemy-json's nested mutable types).
PLAIN, MUTABLE_DICT, MUTABLE_LIST, TRACKED = "JSON", "MutableDict", "MutableList", "tracked"
OTHER = "other"  # an attribute of that name that is not a JSON column
ANY = "*"  # flag_modified with a column name the analysis cannot read: treat as every column
EXTERNAL = "external"  # an object of a class the scanned code does not declare: not one of its models
# Annotation names that say nothing about which class an object is.
_UNTYPED = frozenset({"Any", "object", "Self", "T", "TypeVar", "Optional", "Union", "Annotated"})

_JSON_TYPES = frozenset({"JSON", "JSONB"})
_COLUMN_CALLS = frozenset({"Column", "mapped_column"})
_DICT_MUTATORS = frozenset({"update", "setdefault", "pop", "popitem", "clear"})
_LIST_MUTATORS = frozenset({"append", "extend", "insert", "remove", "sort", "reverse", "pop", "clear"})
_MUTATORS = _DICT_MUTATORS | _LIST_MUTATORS
# The operations sqlalchemy.ext.mutable intercepts, on the column's top-level object only.
_TRACKED_OPS = {
    MUTABLE_DICT: frozenset({"setitem", "delitem", "update", "setdefault", "pop", "popitem", "clear", "ior"}),
    MUTABLE_LIST: frozenset(
        {"setitem", "delitem", "pop", "append", "extend", "iadd", "insert", "remove", "clear", "sort", "reverse"}
    ),
}
_NESTED_NOTE = {
    MUTABLE_DICT: "MutableDict tracks only top-level keys",
    MUTABLE_LIST: "MutableList tracks only its own items",
}
_DISCARDING = frozenset({"rollback", "expire_all", "expire", "refresh"})  # Session methods that drop changes
_SHALLOW_COPY_CALLS = frozenset({"dict", "list", "copy.copy", "copy", "sorted", "tuple"})
_ELEMENT_KEEPING_CALLS = frozenset({"list", "sorted", "reversed", "tuple"})
_DEFAULT_EXCLUDES = (
    ".git", ".hg", ".svn", ".venv", "venv", ".tox", ".nox", "__pycache__", "build", "dist",
    "node_modules", "site-packages", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".eggs", "*.egg-info",
)
_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.IGNORECASE)
_ROOT = re.compile(r"[A-Za-z_]\w*")

# SQLAlchemy's flag_modified(instance, key) as a helper summary: it flags parameter 0's column named by parameter 1.
_FLAG_MODIFIED = (("instance", "key"), 0, frozenset({(0, ("param", 1))}))


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One lost write, located at the in-place change."""

    path: str
    line: int
    col: int
    message: str
    obj: str
    column: str
    code: str = CODE

    @property
    def missing_call(self) -> str:
        """The call that would save the change."""
        return f'flag_modified({self.obj}, "{self.column}")'

    def text(self) -> str:
        """The ruff/flake8 line: ``path:line:col: CODE message``."""
        return f"{self.path}:{self.line}:{self.col}: {self.code} {self.message}"

    def as_json(self) -> dict:
        """The finding as a JSON object."""
        return {
            "path": self.path, "line": self.line, "column": self.col, "code": self.code,
            "message": self.message, "object": self.obj, "attribute": self.column, "missing": self.missing_call,
        }


@dataclass(frozen=True)
class ParseFailure:
    """A file that could not be read or parsed; it is reported, never skipped silently."""

    path: str
    line: int
    col: int
    message: str
    code: str = PARSE_ERROR

    def text(self) -> str:
        """The ruff/flake8 line: ``path:line:col: CODE message``."""
        return f"{self.path}:{self.line}:{self.col}: {self.code} {self.message}"

    def as_json(self) -> dict:
        """The failure as a JSON object."""
        return {"path": self.path, "line": self.line, "column": self.col, "code": self.code, "message": self.message}


@dataclass
class Report:
    """Everything one run found."""

    findings: list[Finding]
    errors: list[ParseFailure]
    files: int = 0

    @property
    def exit_code(self) -> int:
        """2 when a file did not parse, 1 when a lost write was found, else 0."""
        return 2 if self.errors else 1 if self.findings else 0


# --- files --------------------------------------------------------------------------------------


def _excluded(path: Path, patterns: Iterable[str]) -> bool:
    """Whether a pattern names the path's last part, the path, or a trailing part of it."""
    posix = path.as_posix()
    return any(
        fnmatch.fnmatch(path.name, p) or fnmatch.fnmatch(posix, p) or posix.endswith("/" + p.strip("/")) or posix == p
        for p in patterns
    )


def python_files(paths: Iterable[str | Path], exclude: Iterable[str] = ()) -> list[Path]:
    """Every ``.py`` file named or under a named folder, sorted; a named file is never excluded."""
    patterns = (*_DEFAULT_EXCLUDES, *exclude)
    found: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.add(path)
        elif path.is_dir():
            for folder, dirs, files in os.walk(path):
                # Prune while walking, so a virtualenv is never even listed.
                dirs[:] = [d for d in dirs if not _excluded(Path(folder, d), patterns)]
                found.update(Path(folder, f) for f in files if f.endswith(".py") and not _excluded(Path(folder, f), patterns))
        else:
            raise FileNotFoundError(f"no such file or folder: {raw}")
    return sorted(found)


@dataclass
class _Module:
    path: str
    tree: ast.Module
    text: str

    @property
    def lines(self) -> list[str]:
        """The source lines."""
        return self.text.splitlines()


def _parsed(path: Path) -> _Module | ParseFailure:
    """The parsed file, or why it could not be parsed."""
    try:
        text = importlib.util.decode_source(path.read_bytes())  # honours a coding cookie
    except (OSError, UnicodeDecodeError, SyntaxError) as error:
        return ParseFailure(str(path), 1, 1, f"cannot read: {error}")
    try:
        return _Module(str(path), ast.parse(text, filename=str(path)), text)
    except SyntaxError as error:
        return ParseFailure(str(path), error.lineno or 1, error.offset or 1, f"SyntaxError: {error.msg}")
    except (ValueError, RecursionError, MemoryError) as error:  # a null byte; nesting too deep for the parser
        return ParseFailure(str(path), 1, 1, f"cannot parse: {type(error).__name__}: {error}")


# --- small AST helpers --------------------------------------------------------------------------


def _tail(node: ast.AST | None) -> str | None:
    """The last name of a dotted reference (``sa.JSON`` → ``JSON``), or None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _dotted(node: ast.AST) -> str | None:
    """A dotted reference as text (``copy.deepcopy``), or None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else None
    return None


def _root(text: str) -> str:
    """The name an object expression starts from (``self.user`` → ``self``)."""
    match = _ROOT.match(text)
    return match.group(0) if match else text


def _text(node: ast.AST) -> str:
    """Source text of an expression, as ``flag_modified`` would be written with it."""
    return ast.unparse(node)


def _children_first(node: ast.AST) -> list[ast.AST]:
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
_NO_CHILDREN = (ast.expr_context, ast.operator, ast.boolop, ast.unaryop, ast.cmpop, ast.Constant)


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """A module's own statements, also those under module-level if/try/with blocks."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, (ast.If, ast.Try, ast.With)):
            for block in ("body", "orelse", "finalbody"):
                yield from _top_level(getattr(stmt, block, []))
            for handler in getattr(stmt, "handlers", []):
                yield from _top_level(handler.body)


def _bound_at_top(body: list[ast.stmt]) -> set[str]:
    """Names a module binds at its top level: assignments, imports, definitions."""
    names: set[str] = set()
    for stmt in _top_level(body):
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in stmt.names}
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(stmt.name)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for target in stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def _without_optional(node: ast.AST) -> ast.AST:
    """``X | None`` / ``Optional[X]`` / ``"X"`` as ``X``: the same column type."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            return _without_optional(ast.parse(node.value, mode="eval").body)
        except SyntaxError:
            return node
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        if isinstance(node.right, ast.Constant) and node.right.value is None:
            return _without_optional(node.left)
        if isinstance(node.left, ast.Constant) and node.left.value is None:
            return _without_optional(node.right)
    if isinstance(node, ast.Subscript) and _tail(node.value) == "Optional":
        return _without_optional(node.slice)
    return node


def _annotation_key(node: ast.AST) -> str:
    """An annotation as comparable text (``dict[str, Any]``, spaces and ``typing.`` dropped)."""
    return _text(_without_optional(node)).replace(" ", "").replace("typing.", "")


def _mapped_inner(annotation: ast.AST) -> ast.AST | None:
    """``X`` from ``Mapped[X]`` (also quoted), or None when the annotation is not ``Mapped``."""
    annotation = _without_optional(annotation)
    if isinstance(annotation, ast.Subscript) and _tail(annotation.value) == "Mapped":
        return annotation.slice
    return None


# --- declarations -------------------------------------------------------------------------------


def _wrapper_kind(call: ast.Call, aliases: dict[str, str]) -> str | None:
    """The tracking a mutable wrapper call gives a JSON type, or None if it is no such wrapper."""
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr == "as_mutable" and _tail(func.value) in (MUTABLE_DICT, MUTABLE_LIST):
        if any(_type_kind(arg, aliases) for arg in call.args):
            return _tail(func.value)
    if _tail(func) == "mutable_json_type":  # sqlalchemy-json: nested=True tracks every level
        nested = next((k.value for k in call.keywords if k.arg == "nested"), None)
        return TRACKED if isinstance(nested, ast.Constant) and nested.value is True else MUTABLE_DICT
    return None


def _type_kind(expr: ast.AST, aliases: dict[str, str]) -> str | None:
    """How SQLAlchemy tracks a column of this type expression, or None if it is not a JSON type."""
    found: set[str] = set()
    for node in ast.walk(expr):
        if isinstance(node, ast.Call):
            wrapper = _wrapper_kind(node, aliases)
            if wrapper:
                found.add(wrapper)
        name = _tail(node)
        if name in _JSON_TYPES:
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


def _column_call_kind(value: ast.AST, aliases: dict[str, str]) -> tuple[bool, str | None]:
    """Whether ``value`` declares a column (also SQLModel's ``Field(sa_column=...)``), and its JSON kind."""
    if not isinstance(value, ast.Call):
        return False, None
    if _tail(value.func) in _COLUMN_CALLS:
        kinds = [_type_kind(arg, aliases) for arg in _column_type_args(value)]
        return True, next((k for k in kinds if k), None)
    for keyword in value.keywords:
        if keyword.arg == "sa_column":
            return _column_call_kind(keyword.value, aliases)
        if keyword.arg == "sa_type":
            return True, _type_kind(keyword.value, aliases)
    return False, None


@dataclass
class _ClassInfo:
    name: str
    bases: list[str]
    columns: dict[str, str] = field(default_factory=dict)  # attribute → kind
    others: set[str] = field(default_factory=set)  # declared in the body as something else
    init_attrs: set[str] = field(default_factory=set)  # self.X assigned in __init__
    path: str = ""
    attr_annotations: dict[str, ast.AST] = field(default_factory=dict)  # what class and __init__ annotate


@dataclass
class _Function:
    node: ast.FunctionDef | ast.AsyncFunctionDef
    module: _Module
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


def _function(node: ast.FunctionDef | ast.AsyncFunctionDef, module: _Module, class_node: ast.ClassDef | None) -> _Function:
    """A function with its parameters (what its body holds is filled in by ``_filled``)."""
    args = node.args
    params = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    decorators = {_tail(d) for d in node.decorator_list}
    is_method = class_node is not None and "staticmethod" not in decorators
    self_name = params[0] if is_method and params and "classmethod" not in decorators else None
    return _Function(node, module, class_node, params, self_name, 1 if is_method and params else 0)


@dataclass
class _Outline:
    """The statements of every module: classes, functions, mapper calls; no expression walked yet."""

    classes: list[ast.ClassDef] = field(default_factory=list)
    class_paths: dict[int, str] = field(default_factory=dict)  # id(ClassDef) → its file
    functions: list[_Function] = field(default_factory=list)
    by_module: dict[str, list[_Function]] = field(default_factory=dict)
    mapper_calls: list[ast.Call] = field(default_factory=list)
    # file → local name → (relative level, module, imported name or None for ``import module``)
    imports: dict[str, dict[str, tuple[int, str, str | None]]] = field(default_factory=dict)


_STATEMENT_BLOCKS = ("body", "orelse", "finalbody", "handlers", "cases")
_COMPOUND = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try, ast.TryStar, ast.Match,
             ast.ExceptHandler, ast.match_case)


def _outlined(module: _Module, outline: _Outline) -> None:
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
            if isinstance(value, ast.Call) and _tail(value.func) in ("map_imperatively", "mapper"):
                outline.mapper_calls.append(value)
    outline.functions += functions


def _filled(fn: _Function) -> None:
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
            name = _tail(node.func)
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
            if not isinstance(child, _NO_CHILDREN):
                push(child)


_CALLED = re.compile(r"(?<![\w.]def )\b([A-Za-z_]\w*)\s*\(")


def _source_of(fn: _Function, lines: list[str]) -> str:
    """The text of a function's own lines."""
    return "\n".join(lines[fn.node.lineno - 1 : fn.node.end_lineno])


def _matches(pattern: re.Pattern | None, text: str) -> bool:
    """Whether the pattern occurs in the text (no pattern: never)."""
    return pattern is not None and pattern.search(text) is not None


def _words(names: Iterable[str], suffix: str = "") -> re.Pattern | None:
    """A regex finding any of the names as a whole word (followed by ``suffix``), or None for no names."""
    names = sorted(set(names))
    return re.compile(r"\b(?:" + "|".join(map(re.escape, names)) + r")\b" + suffix) if names else None


def _argument(call: ast.Call, params: tuple[str, ...] | list[str], shift: int, index: int) -> ast.AST | None:
    """The expression a call passes for the callee's parameter ``index`` (the receiver for ``self``)."""
    if shift and index == 0:
        return call.func.value if isinstance(call.func, ast.Attribute) else None
    position = index - shift
    positional = call.args
    if position < len(positional) and not any(isinstance(a, ast.Starred) for a in positional[: position + 1]):
        return positional[position]
    name = params[index] if index < len(params) else None
    return next((k.value for k in call.keywords if k.arg == name), None)


class Declarations:
    """What the scanned tree declares: JSON columns, classes, and helpers that flag their argument."""

    def __init__(self, modules: list[_Module], columns: Iterable[str] = ()):
        outline = _Outline()
        for module in modules:
            _outlined(module, outline)
        self.class_nodes, self.mapper_calls = outline.classes, outline.mapper_calls
        self.class_paths = outline.class_paths
        self.top_level = [stmt for module in modules for stmt in _top_level(module.tree.body)]
        self.top_level += [stmt for node in self.class_nodes for stmt in node.body]
        self.aliases = self._type_aliases()
        self.annotation_map = self._annotation_map()
        self.classes, self.class_infos = self._classes()
        self.info_by_id = {id(info): info for info in self.class_infos.values()}
        self.imports = outline.imports
        self.classes_by_path: dict[str, dict[str, list[_ClassInfo]]] = {}
        for node in self.class_nodes:
            by_name = self.classes_by_path.setdefault(outline.class_paths[id(node)], {})
            by_name.setdefault(node.name, []).append(self.class_infos[id(node)])
        self.paths = {Path(module.path).as_posix(): module.path for module in modules}
        self._files_cache: dict[tuple, list[str]] = {}
        self.json_attrs: dict[str, frozenset[str]] = {}
        for info in self.class_infos.values():
            for attr, kind in info.columns.items():
                self.json_attrs[attr] = self.json_attrs.get(attr, frozenset()) | {kind}
        for name in columns:
            self.json_attrs[name] = self.json_attrs.get(name, frozenset()) | {PLAIN}
        # For each column, the classes whose methods may change it on self: its models, their bases and mixins.
        self.model_lineage: dict[str, set[int]] = {}
        for info in self.class_infos.values():
            for attr in info.columns:
                self.model_lineage.setdefault(attr, set()).update(id(i) for i in self._lineage([info]))
        # flag_modified under any name it is imported as (``import ... flag_modified as mark_changed``).
        self.flag_names = {"flag_modified"} | {
            local for names in outline.imports.values() for local, (_, _, original) in names.items() if original == "flag_modified"
        }
        self.functions = self._filled_functions(modules, outline)
        self.evaluation_order: dict[int, list[ast.AST]] = {}  # id(expression) → its calls and walruses, in order
        self.called = {name for fn in self.functions for name in fn.call_names}
        self.module_globals = {module.path: _bound_at_top(module.tree.body) for module in modules}
        self.type_unions = {
            stmt.targets[0].id if isinstance(stmt, ast.Assign) else stmt.target.id: stmt.value
            for stmt in self.top_level
            if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name))
            or (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None)
        }

    def annotation_type(self, annotation: ast.AST | None, path: str) -> str | frozenset[int]:
        """What an annotation says an object is: '?' (unknown), EXTERNAL, or the ids of scanned classes."""
        if annotation is None:
            return "?"
        found: set[int] = set()
        external = False
        for member in self._union_members(annotation, 0):
            infos = self.class_candidates(member, path)
            name = _tail(member)
            if isinstance(member, ast.Subscript):
                external = True  # list[User], dict[...], type[User]: a container or a class, not a row
            elif infos:
                found |= {id(info) for info in infos}
            elif name and name[:1].isupper() and name not in _UNTYPED:
                external = True
            else:
                return "?"
        return frozenset(found) if found else (EXTERNAL if external else "?")

    def class_candidates(self, node: ast.AST, path: str) -> list[_ClassInfo] | None:
        """The scanned classes a class reference in ``path`` may mean: through its imports, else every one of that name."""
        if isinstance(node, ast.Name):
            return self._resolved_class(node.id, path, 0) or self.classes.get(node.id)
        dotted = _dotted(node)
        if dotted is None:
            return None
        parts = dotted.split(".")
        return self._resolved_dotted(parts, path) or self.classes.get(parts[-1])

    def _resolved_class(self, name: str, path: str, depth: int) -> list[_ClassInfo] | None:
        """The class ``name`` means in file ``path``: defined there, or imported (re-exports followed)."""
        local = self.classes_by_path.get(path, {}).get(name)
        if local or depth > 5:
            return local
        spec = self.imports.get(path, {}).get(name)
        if spec is None or spec[2] is None:
            return None
        level, module, original = spec
        found = [info for target in self._files_for(level, module, path) for info in self._resolved_class(original, target, depth + 1) or ()]
        return found or None

    def _resolved_dotted(self, parts: list[str], path: str) -> list[_ClassInfo] | None:
        """The class ``module.Class`` means in file ``path``, the module found through the file's imports."""
        spec = self.imports.get(path, {}).get(parts[0])
        if spec is None or len(parts) < 2:
            return None
        level, module, original = spec
        dotted = ".".join(p for p in (module, original, *parts[1:-1]) if p)
        found = [info for target in self._files_for(level, dotted, path) for info in self._resolved_class(parts[-1], target, 1) or ()]
        return found or None

    def _files_for(self, level: int, module: str, path: str) -> list[str]:
        """The scanned files a (relative) module name points to: ``a/b.py`` or ``a/b/__init__.py``."""
        key = (level, module, Path(path).parent.as_posix() if level else "")
        if key not in self._files_cache:
            parts = [p for p in module.split(".") if p]
            if level:
                base = Path(path).parent
                for _ in range(level - 1):
                    base = base.parent
                stem = base.joinpath(*parts)
                wanted = [(stem / "__init__.py").as_posix()] + ([stem.with_suffix(".py").as_posix()] if parts else [])
                self._files_cache[key] = [self.paths[w] for w in wanted if w in self.paths]
            else:
                tail = "/".join(parts)
                ends = (f"{tail}.py", f"{tail}/__init__.py")
                self._files_cache[key] = [
                    original for posix, original in self.paths.items()
                    if any(posix == end or posix.endswith("/" + end) for end in ends)
                ]
        return self._files_cache[key]

    def _union_members(self, node: ast.AST, depth: int) -> list[ast.AST]:
        """The alternatives of an annotation: ``A | B``, ``Union[A, B]``, ``Optional[A]``, aliases of those."""
        node = _without_optional(node)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return self._union_members(node.left, depth) + self._union_members(node.right, depth)
        if isinstance(node, ast.Subscript) and _tail(node.value) in ("Union", "Annotated"):
            parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            parts = parts[:1] if _tail(node.value) == "Annotated" else parts
            return [m for part in parts for m in self._union_members(part, depth)]
        if isinstance(node, ast.Constant) and node.value is None:
            return []
        name = _tail(node)
        if name in self.type_unions and name not in self.classes and depth < 5:
            return self._union_members(self.type_unions[name], depth + 1)
        return [node]

    def _filled_functions(self, modules: list[_Module], outline: _Outline) -> list[_Function]:
        """The functions whose bodies can matter, filled in; the rest are never walked (the run's main saving).

        A function matters when its text names a JSON column or flag_modified, or calls a function
        that flags its argument or changes a JSON column, directly or through such a function (rounds).
        """
        by_path = {module.path: module for module in modules}
        sources: dict[int, str] = {}

        def source(fn: _Function) -> str:
            """A function's own text (a module split into lines once)."""
            if id(fn.node) not in sources:
                lines = split.setdefault(fn.path, by_path[fn.path].lines)
                sources[id(fn.node)] = _source_of(fn, lines)
            return sources[id(fn.node)]

        split: dict[str, list[str]] = {}
        mentions = _words([*self.json_attrs, *self.flag_names])
        # A module's text is searched first, so most modules are never split into functions at all.
        todo = [
            fn for module in modules if _matches(mentions, module.text)
            for fn in outline.by_module[module.path] if _matches(mentions, source(fn))
        ]
        filled: list[_Function] = []
        module_calls: dict[str, set[str]] = {}
        function_calls: dict[int, set[str]] = {}
        helpers: set[str] = set()
        while todo:
            for fn in todo:
                _filled(fn)
            filled += todo
            done = {id(fn.node) for fn in filled}
            self.flag_summaries = self._flag_summaries(filled)
            # Functions a caller's outcome depends on: those that flag, change a column, or call such a function.
            grown = True
            while grown:
                before = len(helpers)
                helpers |= {n for n in self.flag_summaries if n not in self.flag_names}
                helpers |= {fn.name for fn in filled if fn.attrs & self.json_attrs.keys() or fn.call_names & helpers}
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
        return filled

    # type aliases: JsonDict = JSON, Annotated[dict, mapped_column(JSONB)], TypeDecorator subclasses

    def _type_aliases(self) -> dict[str, str]:
        """Names that stand for a JSON type, with their kind, resolved through each other."""
        candidates: list[tuple[str, list[ast.AST]]] = []
        for node in self.top_level:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                candidates.append((node.targets[0].id, [node.value]))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                candidates.append((node.target.id, [node.value]))
        for node in self.class_nodes:  # TypeDecorator subclasses: impl = JSON
            impl = [s.value for s in node.body if isinstance(s, ast.Assign) and any(_tail(t) == "impl" for t in s.targets)]
            candidates.append((node.name, [*node.bases, *impl]))
        candidates = [(n, [e for e in exprs if isinstance(e, (ast.Name, ast.Attribute, ast.Call, ast.Subscript))]) for n, exprs in candidates]
        # Column declarations are not aliases even though their expression names JSON.
        candidates = [(n, exprs) for n, exprs in candidates if not any(_column_call_kind(e, {})[0] for e in exprs)]
        aliases: dict[str, str] = {}
        changed = True
        while changed:
            changed = False
            for name, exprs in candidates:
                kind = next((k for k in (_type_kind(e, aliases) for e in exprs) if k), None)
                if kind and aliases.get(name) != kind and name not in _JSON_TYPES:
                    aliases[name] = kind
                    changed = True
        return aliases

    def _annotation_map(self) -> dict[str, str]:
        """``type_annotation_map`` entries of declarative bases that map a Python type to JSON."""
        mapping: dict[str, str] = {}
        for node in self.top_level:
            value = None
            if isinstance(node, ast.Assign) and any(_tail(t) == "type_annotation_map" for t in node.targets):
                value = node.value
            elif isinstance(node, ast.AnnAssign) and _tail(node.target) == "type_annotation_map":
                value = node.value
            if isinstance(value, ast.Dict):
                for key, kind in zip(value.keys, value.values):
                    found = _type_kind(kind, self.aliases) if key is not None else None
                    if found:
                        mapping[_annotation_key(key)] = found
        return mapping

    def _annotation_kind(self, inner: ast.AST) -> str | None:
        """The JSON kind ``Mapped[inner]`` gets, directly, through an alias or the annotation map."""
        return _type_kind(_without_optional(inner), self.aliases) or self.annotation_map.get(_annotation_key(inner))

    # classes and their columns

    def _classes(self) -> tuple[dict[str, list[_ClassInfo]], dict[int, _ClassInfo]]:
        """Every class by name (several may share one) and by its node, with its JSON columns."""
        tables = self._core_tables()
        by_name: dict[str, list[_ClassInfo]] = {}
        by_node: dict[int, _ClassInfo] = {}
        for node in self.class_nodes:
            info = by_node[id(node)] = self._class_info(node, self.class_paths[id(node)], tables)
            by_name.setdefault(node.name, []).append(info)
        for call in self.mapper_calls:  # imperative mapping: registry.map_imperatively(User, users_table)
            if len(call.args) >= 2:
                for info in by_name.get(_tail(call.args[0]) or "", []):
                    info.columns.update(tables.get(_tail(call.args[1]) or "", {}))
        return by_name, by_node

    def _core_tables(self) -> dict[str, dict[str, str]]:
        """Core ``Table(...)`` assignments: variable name → JSON column name → kind."""
        tables: dict[str, dict[str, str]] = {}
        for node in self.top_level:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and _tail(node.value.func) == "Table":
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        tables[target.id] = self._table_columns(node.value)
        return tables

    def _table_columns(self, call: ast.Call) -> dict[str, str]:
        """The JSON columns of a ``Table(...)`` call, by column name."""
        columns = {}
        for arg in call.args:
            is_column, kind = _column_call_kind(arg, self.aliases)
            name = arg.args[0] if is_column and arg.args else None
            if kind and isinstance(name, ast.Constant) and isinstance(name.value, str):
                columns[name.value] = kind
        return columns

    def _class_info(self, node: ast.ClassDef, path: str, tables: dict[str, dict[str, str]]) -> _ClassInfo:
        """A class's bases and what its body declares."""
        info = _ClassInfo(node.name, [b for b in (_tail(base) for base in node.bases) if b], path=path)
        for stmt in node.body:
            if isinstance(stmt, ast.Assign):
                for target in (t for t in stmt.targets if isinstance(t, ast.Name)):
                    self._declare(info, target.id, None, stmt.value, tables)
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                self._declare(info, stmt.target.id, stmt.annotation, stmt.value, tables)
                if _mapped_inner(stmt.annotation) is None:
                    info.attr_annotations[stmt.target.id] = stmt.annotation
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == "__init__":
                self._init_attributes(info, stmt)
        return info

    def _init_attributes(self, info: _ClassInfo, init: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        """``self.X`` set in ``__init__``, with its type when annotated or taken from an annotated parameter."""
        args = init.args
        annotated = {a.arg: a.annotation for a in (*args.posonlyargs, *args.args, *args.kwonlyargs) if a.annotation}
        for sub in (n for part in init.body for n in ast.walk(part)):
            targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target] if isinstance(sub, ast.AnnAssign) else []
            for target in targets:
                if isinstance(target, ast.Attribute) and _tail(target.value) == "self":
                    info.init_attrs.add(target.attr)
                    if isinstance(sub, ast.AnnAssign):
                        info.attr_annotations.setdefault(target.attr, sub.annotation)
                    elif isinstance(sub.value, ast.Name) and sub.value.id in annotated:
                        info.attr_annotations.setdefault(target.attr, annotated[sub.value.id])

    def _declare(self, info: _ClassInfo, name: str, annotation: ast.AST | None, value: ast.AST | None, tables) -> None:
        """Record one class-body declaration as a JSON column or as something else."""
        if name == "__table__" and value is not None:
            is_table = isinstance(value, ast.Call) and _tail(value.func) == "Table"
            info.columns.update(self._table_columns(value) if is_table else tables.get(_tail(value) or "", {}))
            return
        is_column, kind = _column_call_kind(value, self.aliases) if value is not None else (False, None)
        inner = _mapped_inner(annotation) if annotation is not None else None
        if kind is None and inner is not None:
            kind = self._annotation_kind(inner)
        if kind:
            info.columns[name] = kind
        else:
            info.others.add(name)

    def column_kinds(self, infos: list[_ClassInfo], attr: str) -> frozenset[str] | str | None:
        """What ``attr`` is on instances of these classes: JSON kinds, OTHER, or None when unknown."""
        answers = {self._column_kind(info, attr) for info in infos}
        kinds = frozenset(a for a in answers if a not in (OTHER, None))
        if kinds:
            return kinds
        return OTHER if answers == {OTHER} else None

    def attribute_type(self, infos: list[_ClassInfo], attr: str) -> list[_ClassInfo] | str | None:
        """What ``obj.attr`` holds when ``obj`` is one of these classes, from their annotations."""
        for info in self._lineage(infos):
            if attr in info.attr_annotations:
                found = self.annotation_type(info.attr_annotations[attr], info.path)
                if found == EXTERNAL:
                    return EXTERNAL
                return [self.info_by_id[i] for i in found] if isinstance(found, frozenset) else None
        return None

    def _lineage(self, infos: list[_ClassInfo]) -> Iterator[_ClassInfo]:
        """These classes and their scanned bases, nearest first."""
        seen: set[int] = set()
        queue = list(infos)
        while queue:
            info = queue.pop(0)
            if id(info) not in seen:
                seen.add(id(info))
                yield info
                queue.extend(base for name in info.bases for base in self.classes.get(name, ()))

    def _column_kind(self, start: _ClassInfo, attr: str) -> str | None:
        """What ``attr`` is on one class and its scanned bases: body declarations first, then ``__init__``."""
        for info in self._lineage([start]):
            if attr in info.columns:
                return info.columns[attr]
            if attr in info.others:
                return OTHER
        # Set in __init__ and declared nowhere: a plain instance attribute (a config's own dict).
        return OTHER if any(attr in info.init_attrs for info in self._lineage([start])) else None

    # helpers

    def callees(self, call: ast.Call, summaries: dict[str, list]) -> Iterator[tuple]:
        """The summaries a call may run: plain functions by name; methods and module functions by attribute."""
        func = call.func
        if isinstance(func, ast.Name):
            for params, shift, entries in summaries.get(func.id, ()):
                if shift == 0:
                    yield params, shift, entries
        elif isinstance(func, ast.Attribute):
            yield from summaries.get(func.attr, ())

    def _flag_summaries(self, functions: list[_Function]) -> dict[str, list]:
        """For each function name: (params, shift, {(param index, column or ("param", i) or ANY)}) it flags."""
        entries: dict[int, set] = {id(fn.node): set() for fn in functions}
        summaries: dict[str, list] = {}
        changed = True
        while changed:
            summaries = {name: [_FLAG_MODIFIED] for name in self.flag_names}
            for fn in functions:
                if entries[id(fn.node)]:
                    summaries.setdefault(fn.name, []).append((tuple(fn.params), fn.shift, frozenset(entries[id(fn.node)])))
            changed = False
            for fn in functions:
                for call in fn.calls:
                    for flagged in self._flags_passed_on(fn, call, summaries):
                        if flagged not in entries[id(fn.node)]:
                            entries[id(fn.node)].add(flagged)
                            changed = True
        return summaries

    def _flags_passed_on(self, fn: _Function, call: ast.Call, summaries: dict[str, list]) -> Iterator[tuple]:
        """The (parameter, column) pairs of ``fn`` that one of its calls flags."""
        for params, shift, entries in self.callees(call, summaries):
            for index, column in entries:
                target = _argument(call, params, shift, index)
                if not (isinstance(target, ast.Name) and target.id in fn.params):
                    continue
                if isinstance(column, tuple):
                    given = _argument(call, params, shift, column[1])
                    if isinstance(given, ast.Constant) and isinstance(given.value, str):
                        column = given.value
                    elif isinstance(given, ast.Name) and given.id in fn.params:
                        column = ("param", fn.params.index(given.id))
                    else:
                        column = ANY
                yield fn.params.index(target.id), column


# --- the per-function analysis ------------------------------------------------------------------


@dataclass(frozen=True)
class _Origin:
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
class _Site:
    """A pending change in the function being analysed: its object and column here, and its origin."""

    key: tuple[str, str]
    origin: _Origin
    call: tuple[str, str, int] | None = None  # handed over by a helper: (helper name, path, line of the call)


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


def _nested(refs: set) -> set:
    """What a subscript of these objects refers to: one level deeper, shared with the column."""
    return {(key, min(depth + 1, 2), False, False) for key, depth, _, _ in refs}


def _copied(refs: set, clean: bool) -> set:
    """A shallow copy of these objects: a new container whose items are still the column's."""
    return {(key, depth, True, clean) for key, depth, _, _ in refs}


class _Analysis:
    """One function's in-place changes, run statement by statement (a forward may-analysis).

    A state is a frozenset of facts: ("p", site) a pending change; ("a", name, key, depth, fresh)
    ``name`` refers to column ``key``'s object at ``depth`` (0 the value itself, 1+ nested), or to
    a shallow copy of it when ``fresh``; ("c", name) ``name`` may be a copy with no top-level change.
    """

    def __init__(self, fn: _Function, decls: Declarations, escapes: dict[str, list]):
        self.fn, self.decls, self.escapes = fn, decls, escapes
        self.sites: list[_Site] = []
        self.site_ids: dict[tuple, int] = {}
        self.kinds: dict[tuple[str, str], frozenset[str]] = {}
        self.leaks: dict[int, str] = {}  # site → why it is lost
        self.assigned_back: dict[int, str] = {}  # site → how it was assigned back without effect
        self.handed_over: list[tuple] = []  # (param index, rest of object, site) left to the callers
        self.try_seen: list[frozenset] = []
        self.keys: dict[int, tuple[str, str] | None] = {}
        self.types, self.new_objects = self._local_types()
        args = fn.node.args
        self.locals = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg) if a}
        self.locals |= {node.id for node in fn.stores}

    # what names refer to

    def _local_types(self) -> tuple[dict[str, list[_ClassInfo] | str], set[str]]:
        """What each local name holds (scanned classes or EXTERNAL), and the names only ever bound to a new object."""
        described: dict[str, set] = {}
        declared: dict[str, str | frozenset[int]] = {}
        constructed: dict[str, bool] = {}
        args = self.fn.node.args
        for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
            if arg is not None and arg.arg != self.fn.self_name:
                description = self.decls.annotation_type(arg.annotation, self.fn.path)
                described.setdefault(arg.arg, set()).add(description)
                if description != "?":
                    declared[arg.arg] = description
                constructed[arg.arg] = False
        typed: set[int] = set()
        for node in self.fn.assigns:
            binding = self._binding(node)
            if binding is None:
                continue
            target, description, is_declared, new = binding
            typed.add(id(target))
            described.setdefault(target.id, set()).add(description)
            if is_declared:
                declared[target.id] = description
            constructed[target.id] = constructed.get(target.id, True) and new
        for node in self.fn.stores:  # any other binding (for, with, unpacking) says nothing
            if id(node) not in typed:
                described.setdefault(node.id, set()).add("?")
                constructed[node.id] = False
        for name, description in declared.items():
            described[name] = {description}  # a declared type holds for every later assignment
        types: dict[str, list[_ClassInfo] | str] = {}
        for name, found in described.items():
            if len(found) == 1 and "?" not in found:
                (description,) = found
                types[name] = EXTERNAL if description == EXTERNAL else [self.decls.info_by_id[i] for i in description]
        if self.fn.self_name and self.fn.class_node is not None:
            types[self.fn.self_name] = [self.decls.class_infos[id(self.fn.class_node)]]
            # A model's own __init__ works on a new object: its whole value is inserted.
            constructed[self.fn.self_name] = self.fn.name == "__init__"
        return types, {name for name, new in constructed.items() if new}

    def _binding(self, node: ast.Assign | ast.AnnAssign) -> tuple[ast.Name, object, bool, bool] | None:
        """(name, what it holds, whether annotated, whether a new object) for ``name = value``, else None."""
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target, value, annotation = node.targets[0], node.value, None
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            target, value, annotation = node.target, node.value, node.annotation
        else:
            return None
        value = value.value if isinstance(value, ast.Await) else value
        called = _tail(value.func) if isinstance(value, ast.Call) else None
        new = bool(called) and called[:1].isupper()  # a constructor: a new object, inserted whole if a model
        path = self.fn.path
        if annotation is not None:
            description = self.decls.annotation_type(annotation, path)
            return target, description, description != "?", new
        if new:
            infos = self.decls.class_candidates(value.func, path)
            return target, frozenset(id(i) for i in infos) if infos else EXTERNAL, False, True
        if called == "get" and value.args:  # session.get(User, id)
            infos = self.decls.class_candidates(value.args[0], path)
            return target, frozenset(id(i) for i in infos) if infos else "?", False, False
        return target, "?", False, False

    def _column_key(self, node: ast.AST) -> tuple[str, str] | None:
        """(object text, column) when ``node`` is a JSON column attribute of a persistent object."""
        if not isinstance(node, ast.Attribute) or node.attr not in self.decls.json_attrs:
            return None
        if id(node) not in self.keys:  # loops run a node again: decide once
            self.keys[id(node)] = self._decided_key(node)
        return self.keys[id(node)]

    def _decided_key(self, node: ast.Attribute) -> tuple[str, str] | None:
        """``_column_key`` worked out: None when the object is new, module-level, or not one of the models."""
        base = node.value
        name = _root(_text(base)) if isinstance(base, (ast.Name, ast.Attribute)) else None
        if isinstance(base, ast.Name) and base.id in self.new_objects:
            return None  # a new object: an ORM model's whole value is inserted, anything else is no column
        if name in self.decls.module_globals.get(self.fn.path, ()) and name not in self.locals:
            return None  # a module-level object (a template environment, a config): never a session's row
        if isinstance(base, ast.Name) and base.id == self.fn.self_name and self.fn.class_node is not None:
            own = self.decls.class_infos[id(self.fn.class_node)]
            if id(own) not in self.decls.model_lineage.get(node.attr, ()):
                return None  # self of a class that is neither a model with this column nor one of its bases or mixins
        kinds = self.decls.json_attrs[node.attr]
        infos = self._object_type(base)
        if infos == EXTERNAL:
            return None  # annotated or built as a class the scanned code does not declare: not one of its models
        if infos:
            known = self.decls.column_kinds(infos, node.attr)
            if known == OTHER:
                return None  # e.g. a config object's own ``settings`` dict
            kinds = known or kinds
        key = (_text(base), node.attr)
        self.kinds[key] = kinds
        return key

    def _object_type(self, base: ast.AST) -> list[_ClassInfo] | str | None:
        """The classes an object expression may be (a local name, or ``self.attr`` as the class annotates it)."""
        if isinstance(base, ast.Name):
            return self.types.get(base.id)
        if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name):
            owner = self.types.get(base.value.id)
            if owner and owner != EXTERNAL:
                return self.decls.attribute_type(owner, base.attr)
        return None

    def _refs(self, expr: ast.AST | None, state: frozenset) -> set:
        """What ``expr`` evaluates to, as (key, depth, fresh, clean) column objects (may be several)."""
        if expr is None:
            return set()
        if isinstance(expr, ast.Attribute):
            key = self._column_key(expr)
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
        if _dotted(func) in _SHALLOW_COPY_CALLS and call.args:
            # dict(x) is shallow: nested values stay shared; dict(x, k=v) also changes the top level.
            return _copied(self._refs(call.args[0], state), clean=not call.keywords and len(call.args) == 1)
        return set()

    def _element_refs(self, iterable: ast.AST, state: frozenset) -> tuple[int | None, set]:
        """What a for loop's target gets: (None, refs) for the whole item, (i, refs) for tuple position i."""
        if isinstance(iterable, ast.Call):
            func, name = iterable.func, _dotted(iterable.func)
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

    def _site(self, node: ast.AST, key: tuple[str, str], origin: _Origin, call=None) -> int:
        """The id of the pending change made at ``node`` (the same every time the node is run)."""
        ident = (id(node), key, origin)
        if ident not in self.site_ids:
            self.site_ids[ident] = len(self.sites)
            self.sites.append(_Site(key, origin, call))
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
            kinds = self.kinds.get(key, frozenset({PLAIN}))
            if any(k == TRACKED or (depth == 0 and op in _TRACKED_OPS.get(k, ())) for k in kinds):
                continue  # SQLAlchemy itself sees this change
            via, shallow = self._via(container, state)
            notes = [_NESTED_NOTE[k] for k in sorted(kinds) if k in _NESTED_NOTE and depth > 0]
            if shallow:
                notes.append(f"{via} is a shallow copy: its nested values are still {key[0]}.{key[1]}'s")
            line, col = node.lineno, node.col_offset + 1
            origin = _Origin(self.fn.path, line, col, self.fn.name, key[0], key[1], via, "; ".join(notes) or None)
            added.add(("p", self._site(node, key, origin)))
        return state | added

    def _resolved(self, state: frozenset, obj: str, column: str | None) -> frozenset:
        """The state after ``flag_modified(obj, column)`` (column None: every column of ``obj``)."""
        def saved(site: _Site) -> bool:
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
        state = self._leak(state, reason, lambda s: _root(s.key[0]) == name)
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
            what = f"assigning {_text(value)} back to {key[0]}.{key[1]}" if value is not None else "assigning it back"
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
            obj = None if everything else _text(call.args[0])
            state = frozenset(f for f in state if not (f[0] == "p" and (everything or self.sites[f[1]].key[0] == obj)))
        if _tail(func) == "setattr" and len(call.args) == 3:
            obj, name, value = call.args
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                node = ast.Attribute(value=obj, attr=name.value, ctx=ast.Store())
                # A node made here lives briefly: decide without the per-node cache.
                key = self._decided_key(node) if name.value in self.decls.json_attrs else None
                if key:
                    state = self._column_assigned(state, key, self._refs(value, state), value)
        for params, shift, entries in self.decls.callees(call, self.decls.flag_summaries):
            for index, column in entries:
                target = _argument(call, params, shift, index)
                if target is None:
                    continue
                if isinstance(column, tuple):
                    given = _argument(call, params, shift, column[1])
                    column = given.value if isinstance(given, ast.Constant) and isinstance(given.value, str) else ANY
                state = self._resolved(state, _text(target), None if column == ANY else column)
        for params, shift, handed in self.decls.callees(call, self.escapes):
            for index, rest, column, origin in handed:
                target = _argument(call, params, shift, index)
                if target is None or (isinstance(target, ast.Name) and target.id in self.new_objects):
                    continue
                key = (_text(target) + rest, column)
                helper = _tail(func) or "?"
                state |= {("p", self._site(call, key, origin, (helper, self.fn.path, call.lineno)))}
        return state

    def _effects(self, expr: ast.AST | None, state: frozenset) -> frozenset:
        """The state after evaluating an expression: its calls and walrus assignments, innermost first."""
        if expr is None:
            return state
        order = self.decls.evaluation_order.get(id(expr))
        if order is None:  # loops and finally blocks run the same expressions again: walk each once
            order = self.decls.evaluation_order[id(expr)] = _children_first(expr)
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
            key = self._column_key(target)
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

    # statements

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
            root = _root(site.key[0])
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
            and any(True for _ in self.decls.callees(stmt.value, self.decls.flag_summaries))
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
        return _Flow(state)

    def _run_AnnAssign(self, stmt: ast.AnnAssign, state: frozenset) -> _Flow:
        """``name: T = value`` (a bare annotation binds nothing)."""
        if stmt.value is None:
            return _Flow(state)
        state = self._effects(stmt.value, state)
        return _Flow(self._store(state, stmt.target, stmt.value, self._refs(stmt.value, state), stmt))

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
            key = self._column_key(target)
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
        """Both branches from the same state, joined."""
        state = self._effects(stmt.test, state)
        then, other = self._block(stmt.body, state), self._block(stmt.orelse, state)
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


# --- the whole run ------------------------------------------------------------------------------


def _message(site: _Site, reason: str, assigned_back: str | None) -> str:
    """The finding's text: the object, the column, what makes the change lost, and the missing call."""
    origin = site.origin
    target = f"{origin.obj}.{origin.column}"
    through = f" through {origin.via}" if origin.via else ""
    missing = f'flag_modified({origin.obj}, "{origin.column}")'
    extras = [e for e in (origin.note, assigned_back) if e]
    tail = "".join(f"; {e}" for e in extras)
    return f"in-place change to {target}{through} is never saved: no {missing} {reason}{tail}"


def _caller_reason(site: _Site, reason: str, here: str) -> str:
    """Why a change handed to a caller is lost, as said at the helper."""
    helper, path, line = site.call
    where = f"line {line}" if path == here else f"{path}:{line}"
    return f"after {helper}() is called at {where}, {reason}"


def _suppressed(line: str) -> bool:
    """Whether a source line carries ``# noqa`` or ``# noqa: JSN001``."""
    match = _NOQA.search(line)
    return bool(match) and (match.group("codes") is None or CODE in match.group("codes").upper())


def _silenced(path: str, line: int, lines: dict[str, list[str]], modules: dict[str, _Module]) -> bool:
    """Whether ``path:line`` carries a noqa for JSN001 (each file split into lines once)."""
    if path not in lines:
        lines[path] = modules[path].lines if path in modules else []
    source = lines[path]
    return line <= len(source) and _suppressed(source[line - 1])


def _relevant(fn: _Function, decls: Declarations, escapes: dict[str, list]) -> bool:
    """Whether a function can hold a lost write: it names a JSON column or calls a helper that hands one over."""
    return bool(fn.attrs & decls.json_attrs.keys()) or bool(fn.call_names & escapes.keys())


def lint_modules(modules: list[_Module], columns: Iterable[str] = ()) -> list[Finding]:
    """The lost writes in parsed modules, declarations taken from all of them."""
    decls = Declarations(modules, columns)
    escapes: dict[str, list] = {}
    analyses: dict[int, _Analysis] = {}
    changed: set[str] | None = None  # helper names whose hand-over changed last round (None: first round)
    for _ in range(20):  # helpers hand changes to callers; a few rounds settle any real call graph
        for fn in decls.functions:
            if not _relevant(fn, decls, escapes):
                analyses.pop(id(fn.node), None)
            elif id(fn.node) not in analyses or changed is None or fn.call_names & changed:
                # Only callers of a helper whose summary changed can come out differently.
                analysis = _Analysis(fn, decls, escapes)
                analysis.run()
                analyses[id(fn.node)] = analysis
        summaries: dict[str, list] = {}
        for analysis in analyses.values():
            if analysis.handed_over:
                fn = analysis.fn
                summaries.setdefault(fn.name, []).append((tuple(fn.params), fn.shift, tuple(analysis.handed_over)))
        changed = {name for name in summaries.keys() | escapes.keys() if summaries.get(name) != escapes.get(name)}
        escapes = summaries
        if not changed:
            break
    return _findings(list(analyses.values()))


def _findings(analyses: list[_Analysis]) -> list[Finding]:
    """One finding per lost change, at the change, noqa lines left out."""
    modules = {a.fn.path: a.fn.module for a in analyses}
    lines: dict[str, list[str]] = {}
    found: dict[tuple, Finding] = {}
    for analysis in analyses:
        for site_id, reason in analysis.leaks.items():
            site = analysis.sites[site_id]
            origin = site.origin
            if site.call:
                reason = _caller_reason(site, reason, origin.path)
            message = _message(site, reason, analysis.assigned_back.get(site_id))
            place = (origin.path, origin.line, origin.col)
            if place not in found and not _silenced(origin.path, origin.line, lines, modules):
                if site.call and _silenced(site.call[1], site.call[2], lines, modules):
                    continue  # a noqa on the call that hands the change over silences it too
                found[place] = Finding(origin.path, origin.line, origin.col, message, origin.obj, origin.column)
    return sorted(found.values(), key=lambda f: (f.path, f.line, f.col))


def lint_paths(paths: Iterable[str | Path], columns: Iterable[str] = (), exclude: Iterable[str] = ()) -> Report:
    """Lint files and folders: every lost JSON write, and every file that did not parse."""
    files = python_files(paths, exclude)
    collecting = gc.isenabled()
    # Thousands of retained ASTs make every cyclic collection slower; ASTs hold no cycles to collect.
    gc.disable()
    try:
        modules, errors = [], []
        for path in files:
            parsed = _parsed(path)
            (errors if isinstance(parsed, ParseFailure) else modules).append(parsed)
        return Report(lint_modules(modules, columns), errors, len(files))
    finally:
        if collecting:
            gc.enable()


def lint_source(source: str, path: str = "<source>", columns: Iterable[str] = ()) -> list[Finding]:
    """Lint one piece of source text on its own (tests, editors)."""
    return lint_modules([_Module(path, ast.parse(source), source)], columns)
