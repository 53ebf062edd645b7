"""What a registered component takes, read from its source code without importing it.

Shell completion offers setting keys (``--set steps=``) while the user types, and must answer in a blink:
importing a model's module would load torch. A component registered by import path is therefore read with
:mod:`ast`: its ``__init__`` parameters (or its dataclass fields), following base classes through the
module's imports, and its literal class attributes (``data_args``, ``components``, ``default_reweighting``).
Anything the reader cannot follow simply contributes nothing; a class already imported is asked directly.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ATTRIBUTES = ("data_args", "components", "default_reweighting")
MAX_DEPTH = 8  # base classes followed; a deeper hierarchy simply contributes nothing


@dataclass
class ClassFacts:
    """A class's constructor settings (in order) and its literal contract attributes."""

    settings: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)


def class_facts(target: type | str) -> ClassFacts:
    """The facts of a class, or of the class at ``"package.module:Class"`` (read, not imported)."""
    if isinstance(target, type):
        from diffrec_cli.registry import constructor_params

        return ClassFacts(list(constructor_params(target)),
                          {a: getattr(target, a) for a in ATTRIBUTES if hasattr(target, a)})
    module, _, name = target.partition(":")
    return _read(module, name, 0) or ClassFacts()


def _read(module: str, name: str, depth: int) -> ClassFacts | None:
    if depth > MAX_DEPTH:
        return None
    tree = _parse(module)
    node = next((n for n in (tree.body if tree else []) if isinstance(n, ast.ClassDef) and n.name == name), None)
    if node is None:
        return None
    bases = [facts for facts in (_read_base(tree, module, base, depth) for base in node.bases) if facts]
    facts = ClassFacts(attributes={k: v for base in reversed(bases) for k, v in base.attributes.items()})
    facts.attributes.update(_literal_attributes(node))
    init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    if init is not None:
        facts.settings = [a.arg for a in [*init.args.args[1:], *init.args.kwonlyargs]]
    elif _is_dataclass(node):  # inherited fields first, as dataclasses order them
        inherited = [s for base in reversed(bases) for s in base.settings]
        facts.settings = list(dict.fromkeys([*inherited, *_fields(node)]))
    elif bases:
        facts.settings = bases[0].settings
    return facts


def _parse(module: str) -> ast.Module | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    try:
        return ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def _read_base(tree: ast.Module, module: str, base: ast.expr, depth: int) -> ClassFacts | None:
    """A base class named in ``module``: defined there, or imported with ``from X import Name``."""
    if not isinstance(base, ast.Name):
        return None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == base.id:
            return _read(module, base.id, depth + 1)
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == base.id:
                    source = _absolute(module, node.module or "", node.level)
                    return _read(source, alias.name, depth + 1)
    return None


def _absolute(module: str, imported: str, level: int) -> str:
    if level == 0:
        return imported
    package = module.split(".")[:-level]  # the package a relative import starts from
    return ".".join([*package, imported] if imported else package)


def _literal_attributes(node: ast.ClassDef) -> dict[str, Any]:
    found = {}
    for stmt in node.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign):
            target, value = stmt.target, stmt.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ATTRIBUTES and value is not None:
            try:
                found[target.id] = ast.literal_eval(value)
            except ValueError:
                pass
    return found


def _is_dataclass(node: ast.ClassDef) -> bool:
    for decorator in node.decorator_list:
        called = decorator.func if isinstance(decorator, ast.Call) else decorator
        if (isinstance(called, ast.Name) and called.id == "dataclass") or \
                (isinstance(called, ast.Attribute) and called.attr == "dataclass"):
            return True
    return False


def _fields(node: ast.ClassDef) -> list[str]:
    return [stmt.target.id for stmt in node.body if isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name) and "ClassVar" not in ast.unparse(stmt.annotation)]


def setting_keys(registry: Any, model: str, chosen: dict[str, str] | None = None) -> list[str]:
    """Every key ``--set`` accepts for ``model``: the trainer's, the model's own, each component selector
    (``schedule``, ``reweighting``) and the settings of the component chosen in ``chosen`` (else the
    default), read without importing any of them. An unknown model gives the trainer's keys alone."""
    from diffrec_cli.config import TRAIN_FIELDS

    chosen = chosen or {}
    keys = list(TRAIN_FIELDS)
    entry = registry.entries["model"].get(model)
    if entry is None:
        return keys
    facts = class_facts(entry.target)
    data_args = facts.attributes.get("data_args", ("n_users", "n_items"))
    keys += [s for s in facts.settings if s not in data_args]
    selectors = {p: spec for p, spec in facts.attributes.get("components", {}).items() if len(spec) == 2}
    selectors["reweighting"] = ("reweighting", facts.attributes.get("default_reweighting", "none"))
    for parameter, (kind, default) in selectors.items():
        keys.append(parameter)
        component = registry.entries[kind].get(chosen.get(parameter, default))
        if component is not None:
            keys += class_facts(component.target).settings
    return list(dict.fromkeys(keys))
