"""Name -> merge method, for every `@register_method` class under `mixmerge.merge.methods`.

A new method is one module in `methods/`: importing this module imports every module of that
package, so no list here names them. `python -m mixmerge.merge.registry` prints the table of
methods and their parameters, read from the classes' declarations.
"""

from __future__ import annotations

import importlib
import pkgutil

from mixmerge.merge import methods as _methods_pkg
from mixmerge.merge.base import REGISTERED, MergeMethod, Param
from mixmerge.merge.errors import MergeError


def _import_method_modules() -> None:
    for mod in sorted(pkgutil.iter_modules(_methods_pkg.__path__), key=lambda m: m.name):
        importlib.import_module(f"{_methods_pkg.__name__}.{mod.name}")


_import_method_modules()
# Sorted by name, so the order never depends on which method module was imported first.
METHODS: dict[str, type[MergeMethod]] = dict(sorted(REGISTERED.items()))
METHOD_NAMES: list[str] = list(METHODS)


def get_method(name: object) -> MergeMethod:
    if not isinstance(name, str) or name not in METHODS:
        raise MergeError(f"unknown merge_method {name!r}; known: {', '.join(METHOD_NAMES)}")
    return METHODS[name]()


def _describe(params: tuple[Param, ...]) -> str:
    if not params:
        return "none"
    return ", ".join(p.name if p.required else f"{p.name} ({_literal(p.default)})" for p in params)


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return f"[{', '.join(map(str, value))}]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def method_table() -> str:
    """Markdown table: merge_method, module, global and per-model parameters (default)."""
    rows = [
        "| merge_method | module | global parameters (default) | per-model parameters (default) |",
        "| --- | --- | --- | --- |",
    ]
    for name, cls in METHODS.items():
        module = cls.__module__.rsplit(".", 1)[-1]
        rows.append(
            f"| {name} | {module} | {_describe(cls.global_params)} "
            f"| {_describe(cls.model_params)} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    print(method_table())
