"""Whether ``obj.col`` in a function is a JSON column of a row loaded from the database.

Decides the precision rules: an object is left alone when the code says it is not a loaded row:
a new object (a constructor call; a new model's whole value is inserted, ``self`` in a model's
own ``__init__``), a module-level object, ``self`` of a class that is neither a model with that
column nor one of its bases or mixins, or an object annotated (parameter, local, or the class's
own attribute annotation) as a class that does not declare that column or that the scanned code
does not declare at all. Most false positives on objects that merely share a column's name are
decided in ``RowTypes.decided_key``.
"""

from __future__ import annotations

import ast

from guard.declarations import EXTERNAL, OTHER, ClassInfo, Declarations
from guard.functions import Function
from guard.syntax import root_name, source_text, tail


class RowTypes:
    """One function's objects: what each local name holds, which are new, and which attributes are JSON columns."""

    def __init__(self, fn: Function, decls: Declarations):
        self.fn, self.decls = fn, decls
        self.kinds: dict[tuple[str, str], frozenset[str]] = {}  # (object text, column) → how SQLAlchemy tracks it
        self.keys: dict[int, tuple[str, str] | None] = {}  # id(Attribute node) → its decided key
        self.types, self.new_objects = self._local_types()
        args = fn.node.args
        # Every name the function binds: a flag or an object of the same name at module level is shadowed.
        self.locals = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg) if a}
        self.locals |= {node.id for node in fn.stores}

    def _local_types(self) -> tuple[dict[str, list[ClassInfo] | str], set[str]]:
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
        types: dict[str, list[ClassInfo] | str] = {}
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
        called = tail(value.func) if isinstance(value, ast.Call) else None
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

    def column_key(self, node: ast.AST) -> tuple[str, str] | None:
        """(object text, column) when ``node`` is a JSON column attribute of a persistent object."""
        if not isinstance(node, ast.Attribute) or node.attr not in self.decls.json_attrs:
            return None
        if id(node) not in self.keys:  # loops run a node again: decide once
            self.keys[id(node)] = self.decided_key(node)
        return self.keys[id(node)]

    def decided_key(self, node: ast.Attribute) -> tuple[str, str] | None:
        """``_column_key`` worked out: None when the object is new, module-level, or not one of the models."""
        base = node.value
        name = root_name(source_text(base)) if isinstance(base, (ast.Name, ast.Attribute)) else None
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
        key = (source_text(base), node.attr)
        self.kinds[key] = kinds
        return key

    def _object_type(self, base: ast.AST) -> list[ClassInfo] | str | None:
        """The classes an object expression may be (a local name, or ``self.attr`` as the class annotates it)."""
        if isinstance(base, ast.Name):
            return self.types.get(base.id)
        if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name):
            owner = self.types.get(base.value.id)
            if owner and owner != EXTERNAL:
                return self.decls.attribute_type(owner, base.attr)
        return None
