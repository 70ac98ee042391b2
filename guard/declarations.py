"""Which attributes are JSON columns, on which classes, and what an annotation says an object is.

Decides, over the whole scanned tree: the JSON columns of every class (declarative ``Column`` /
``mapped_column`` / ``Mapped[...]`` through aliases and ``type_annotation_map``, ``__table__``,
imperative ``map_imperatively``, plus ``--columns``), which names are ``flag_modified``, and what
a class reference or annotation in a given file means (through that file's imports, so an ORM
``User`` and an API schema ``User`` are told apart). A false positive on an object that is not a
model is usually decided by ``annotation_type`` / ``column_kinds`` here, or by ``guard.rows``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from guard.columns import JSON_TYPES, PLAIN, column_call_kind, type_kind
from guard.discovery import Module
from guard.functions import Outline, outline_module, walked_functions
from guard.syntax import annotation_key, bound_at_top, dotted, mapped_inner, tail, top_level_statements, without_optional

OTHER = "other"  # an attribute of that name that is not a JSON column
EXTERNAL = "external"  # an object of a class the scanned code does not declare: not one of its models
# Annotation names that say nothing about which class an object is.
_UNTYPED = frozenset({"Any", "object", "Self", "T", "TypeVar", "Optional", "Union", "Annotated"})


@dataclass
class ClassInfo:
    """A class of the scanned code: its bases, its JSON columns, and what else it declares."""

    name: str
    bases: list[str]
    columns: dict[str, str] = field(default_factory=dict)  # attribute → kind
    others: set[str] = field(default_factory=set)  # declared in the body as something else
    init_attrs: set[str] = field(default_factory=set)  # self.X assigned in __init__
    path: str = ""
    attr_annotations: dict[str, ast.AST] = field(default_factory=dict)  # what class and __init__ annotate


class Declarations:
    """What the scanned tree declares: JSON columns, classes, and helpers that flag their argument."""

    def __init__(self, modules: list[Module], columns: Iterable[str] = ()):
        outline = Outline()
        for module in modules:
            outline_module(module, outline)
        self.class_nodes, self.mapper_calls = outline.classes, outline.mapper_calls
        self.class_paths = outline.class_paths
        self.top_level = [stmt for module in modules for stmt in top_level_statements(module.tree.body)]
        self.top_level += [stmt for node in self.class_nodes for stmt in node.body]
        self.aliases = self._type_aliases()
        self.annotation_map = self._annotation_map()
        self.classes, self.class_infos = self._classes()
        self.info_by_id = {id(info): info for info in self.class_infos.values()}
        self.imports = outline.imports
        self.classes_by_path: dict[str, dict[str, list[ClassInfo]]] = {}
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
        self.functions, self.flag_summaries = walked_functions(modules, outline, self.json_attrs, self.flag_names)
        self.evaluation_order: dict[int, list[ast.AST]] = {}  # id(expression) → its calls and walruses, in order
        self.called = {name for fn in self.functions for name in fn.call_names}
        self.module_globals = {module.path: bound_at_top(module.tree.body) for module in modules}
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
            name = tail(member)
            if isinstance(member, ast.Subscript):
                external = True  # list[User], dict[...], type[User]: a container or a class, not a row
            elif infos:
                found |= {id(info) for info in infos}
            elif name and name[:1].isupper() and name not in _UNTYPED:
                external = True
            else:
                return "?"
        return frozenset(found) if found else (EXTERNAL if external else "?")

    def class_candidates(self, node: ast.AST, path: str) -> list[ClassInfo] | None:
        """The scanned classes a class reference in ``path`` may mean: through its imports, else every one of that name."""
        if isinstance(node, ast.Name):
            return self._resolved_class(node.id, path, 0) or self.classes.get(node.id)
        reference = dotted(node)
        if reference is None:
            return None
        parts = reference.split(".")
        return self._resolved_dotted(parts, path) or self.classes.get(parts[-1])

    def _resolved_class(self, name: str, path: str, depth: int) -> list[ClassInfo] | None:
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

    def _resolved_dotted(self, parts: list[str], path: str) -> list[ClassInfo] | None:
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
        node = without_optional(node)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return self._union_members(node.left, depth) + self._union_members(node.right, depth)
        if isinstance(node, ast.Subscript) and tail(node.value) in ("Union", "Annotated"):
            parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            parts = parts[:1] if tail(node.value) == "Annotated" else parts
            return [m for part in parts for m in self._union_members(part, depth)]
        if isinstance(node, ast.Constant) and node.value is None:
            return []
        name = tail(node)
        if name in self.type_unions and name not in self.classes and depth < 5:
            return self._union_members(self.type_unions[name], depth + 1)
        return [node]

    def _type_aliases(self) -> dict[str, str]:
        """Names that stand for a JSON type, with their kind, resolved through each other."""
        candidates: list[tuple[str, list[ast.AST]]] = []
        for node in self.top_level:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                candidates.append((node.targets[0].id, [node.value]))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                candidates.append((node.target.id, [node.value]))
        for node in self.class_nodes:  # TypeDecorator subclasses: impl = JSON
            impl = [s.value for s in node.body if isinstance(s, ast.Assign) and any(tail(t) == "impl" for t in s.targets)]
            candidates.append((node.name, [*node.bases, *impl]))
        candidates = [(n, [e for e in exprs if isinstance(e, (ast.Name, ast.Attribute, ast.Call, ast.Subscript))]) for n, exprs in candidates]
        # Column declarations are not aliases even though their expression names JSON.
        candidates = [(n, exprs) for n, exprs in candidates if not any(column_call_kind(e, {})[0] for e in exprs)]
        aliases: dict[str, str] = {}
        changed = True
        while changed:
            changed = False
            for name, exprs in candidates:
                kind = next((k for k in (type_kind(e, aliases) for e in exprs) if k), None)
                if kind and aliases.get(name) != kind and name not in JSON_TYPES:
                    aliases[name] = kind
                    changed = True
        return aliases

    def _annotation_map(self) -> dict[str, str]:
        """``type_annotation_map`` entries of declarative bases that map a Python type to JSON."""
        mapping: dict[str, str] = {}
        for node in self.top_level:
            value = None
            if isinstance(node, ast.Assign) and any(tail(t) == "type_annotation_map" for t in node.targets):
                value = node.value
            elif isinstance(node, ast.AnnAssign) and tail(node.target) == "type_annotation_map":
                value = node.value
            if isinstance(value, ast.Dict):
                for key, kind in zip(value.keys, value.values):
                    found = type_kind(kind, self.aliases) if key is not None else None
                    if found:
                        mapping[annotation_key(key)] = found
        return mapping

    def _annotation_kind(self, inner: ast.AST) -> str | None:
        """The JSON kind ``Mapped[inner]`` gets, directly, through an alias or the annotation map."""
        return type_kind(without_optional(inner), self.aliases) or self.annotation_map.get(annotation_key(inner))

    # classes and their columns

    def _classes(self) -> tuple[dict[str, list[ClassInfo]], dict[int, ClassInfo]]:
        """Every class by name (several may share one) and by its node, with its JSON columns."""
        tables = self._core_tables()
        by_name: dict[str, list[ClassInfo]] = {}
        by_node: dict[int, ClassInfo] = {}
        for node in self.class_nodes:
            info = by_node[id(node)] = self._class_info(node, self.class_paths[id(node)], tables)
            by_name.setdefault(node.name, []).append(info)
        for call in self.mapper_calls:  # imperative mapping: registry.map_imperatively(User, users_table)
            if len(call.args) >= 2:
                for info in by_name.get(tail(call.args[0]) or "", []):
                    info.columns.update(tables.get(tail(call.args[1]) or "", {}))
        return by_name, by_node

    def _core_tables(self) -> dict[str, dict[str, str]]:
        """Core ``Table(...)`` assignments: variable name → JSON column name → kind."""
        tables: dict[str, dict[str, str]] = {}
        for node in self.top_level:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and tail(node.value.func) == "Table":
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        tables[target.id] = self._table_columns(node.value)
        return tables

    def _table_columns(self, call: ast.Call) -> dict[str, str]:
        """The JSON columns of a ``Table(...)`` call, by column name."""
        columns = {}
        for arg in call.args:
            is_column, kind = column_call_kind(arg, self.aliases)
            name = arg.args[0] if is_column and arg.args else None
            if kind and isinstance(name, ast.Constant) and isinstance(name.value, str):
                columns[name.value] = kind
        return columns

    def _class_info(self, node: ast.ClassDef, path: str, tables: dict[str, dict[str, str]]) -> ClassInfo:
        """A class's bases and what its body declares."""
        info = ClassInfo(node.name, [b for b in (tail(base) for base in node.bases) if b], path=path)
        for stmt in node.body:
            if isinstance(stmt, ast.Assign):
                for target in (t for t in stmt.targets if isinstance(t, ast.Name)):
                    self._declare(info, target.id, None, stmt.value, tables)
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                self._declare(info, stmt.target.id, stmt.annotation, stmt.value, tables)
                if mapped_inner(stmt.annotation) is None:
                    info.attr_annotations[stmt.target.id] = stmt.annotation
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == "__init__":
                self._init_attributes(info, stmt)
        return info

    def _init_attributes(self, info: ClassInfo, init: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        """``self.X`` set in ``__init__``, with its type when annotated or taken from an annotated parameter."""
        args = init.args
        annotated = {a.arg: a.annotation for a in (*args.posonlyargs, *args.args, *args.kwonlyargs) if a.annotation}
        for sub in (n for part in init.body for n in ast.walk(part)):
            targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target] if isinstance(sub, ast.AnnAssign) else []
            for target in targets:
                if isinstance(target, ast.Attribute) and tail(target.value) == "self":
                    info.init_attrs.add(target.attr)
                    if isinstance(sub, ast.AnnAssign):
                        info.attr_annotations.setdefault(target.attr, sub.annotation)
                    elif isinstance(sub.value, ast.Name) and sub.value.id in annotated:
                        info.attr_annotations.setdefault(target.attr, annotated[sub.value.id])

    def _declare(self, info: ClassInfo, name: str, annotation: ast.AST | None, value: ast.AST | None, tables) -> None:
        """Record one class-body declaration as a JSON column or as something else."""
        if name == "__table__" and value is not None:
            is_table = isinstance(value, ast.Call) and tail(value.func) == "Table"
            info.columns.update(self._table_columns(value) if is_table else tables.get(tail(value) or "", {}))
            return
        is_column, kind = column_call_kind(value, self.aliases) if value is not None else (False, None)
        inner = mapped_inner(annotation) if annotation is not None else None
        if kind is None and inner is not None:
            kind = self._annotation_kind(inner)
        if kind:
            info.columns[name] = kind
        else:
            info.others.add(name)

    def column_kinds(self, infos: list[ClassInfo], attr: str) -> frozenset[str] | str | None:
        """What ``attr`` is on instances of these classes: JSON kinds, OTHER, or None when unknown."""
        answers = {self._column_kind(info, attr) for info in infos}
        kinds = frozenset(a for a in answers if a not in (OTHER, None))
        if kinds:
            return kinds
        return OTHER if answers == {OTHER} else None

    def attribute_type(self, infos: list[ClassInfo], attr: str) -> list[ClassInfo] | str | None:
        """What ``obj.attr`` holds when ``obj`` is one of these classes, from their annotations."""
        for info in self._lineage(infos):
            if attr in info.attr_annotations:
                found = self.annotation_type(info.attr_annotations[attr], info.path)
                if found == EXTERNAL:
                    return EXTERNAL
                return [self.info_by_id[i] for i in found] if isinstance(found, frozenset) else None
        return None

    def _lineage(self, infos: list[ClassInfo]) -> Iterator[ClassInfo]:
        """These classes and their scanned bases, nearest first."""
        seen: set[int] = set()
        queue = list(infos)
        while queue:
            info = queue.pop(0)
            if id(info) not in seen:
                seen.add(id(info))
                yield info
                queue.extend(base for name in info.bases for base in self.classes.get(name, ()))

    def _column_kind(self, start: ClassInfo, attr: str) -> str | None:
        """What ``attr`` is on one class and its scanned bases: body declarations first, then ``__init__``."""
        for info in self._lineage([start]):
            if attr in info.columns:
                return info.columns[attr]
            if attr in info.others:
                return OTHER
        # Set in __init__ and declared nowhere: a plain instance attribute (a config's own dict).
        return OTHER if any(attr in info.init_attrs for info in self._lineage([start])) else None
