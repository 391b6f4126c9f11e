"""The method registry: every `@register_method` class of `mixmerge.merge.methods`, found by
importing that package's modules, so a new method is one module and no list names it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml
from merge_helpers import merge_states

import mixmerge.merge.methods as methods_pkg
from mixmerge.merge import MergeError, registry
from mixmerge.merge.base import REGISTERED, MergeMethod, TensorContext, register_method

REPO = Path(__file__).resolve().parents[2]


def test_schema_enum_is_the_registry() -> None:
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    enum = set(schema["$defs"]["merge_method"]["properties"]["merge_method"]["enum"])
    missing, extra = set(registry.METHOD_NAMES) - enum, enum - set(registry.METHOD_NAMES)
    assert not missing and not extra, (
        "workflow/schemas/config.schema.yaml $defs.merge_method.merge_method.enum differs from "
        f"the registered methods: missing {sorted(missing)}, not registered {sorted(extra)}"
    )


def test_every_method_class_is_registered() -> None:
    """A concrete method class that forgot `@register_method` would silently be unusable."""
    found = {}
    for mod in pkgutil.iter_modules(methods_pkg.__path__):
        module = importlib.import_module(f"{methods_pkg.__name__}.{mod.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, MergeMethod)
                and cls.__module__ == module.__name__
                and not inspect.isabstract(cls)
                and cls.name
            ):
                found[cls.name] = cls
    assert found == registry.METHODS
    # by name, not by whichever method module happened to be imported first
    assert sorted(found) == registry.METHOD_NAMES


def test_a_duplicate_name_is_rejected() -> None:
    class AnotherLinear(MergeMethod):
        name = "linear"

        def merge(self, ctx: TensorContext) -> torch.Tensor:
            return ctx.tensors[0]

    with pytest.raises(MergeError, match=r"'linear' is registered twice: by .*LinearMerge and"):
        register_method(AnotherLinear)
    assert REGISTERED["linear"] is registry.METHODS["linear"]


def test_a_nameless_or_abstract_class_is_rejected() -> None:
    class Nameless(MergeMethod):
        def merge(self, ctx: TensorContext) -> torch.Tensor:
            return ctx.tensors[0]

    with pytest.raises(MergeError, match="has no `name`"):
        register_method(Nameless)
    with pytest.raises(MergeError, match="concrete MergeMethod subclass"):
        register_method(MergeMethod)


def test_an_unknown_method_names_the_known_ones() -> None:
    with pytest.raises(MergeError, match=r"unknown merge_method 'lineer'; known: .*\blinear\b"):
        registry.get_method("lineer")


NEW_METHOD = '''
"""`zz_max`: elementwise maximum of the listed models (a method added as one file)."""

import torch

from mixmerge.merge.base import MergeMethod, TensorContext, register_method


@register_method
class MaxMerge(MergeMethod):
    name = "zz_max"

    def merge(self, ctx: TensorContext) -> torch.Tensor:
        out = ctx.mutable(0)
        for x in ctx.tensors[1:]:
            out = torch.maximum(out, x)
        return out
'''


@pytest.fixture
def one_new_module(tmp_path: Path) -> Iterator[None]:
    """`zz_max.py` on the methods package's path, as if added to methods/; undone after."""
    folder = tmp_path / "more_methods"
    folder.mkdir()
    (folder / "zz_max.py").write_text(NEW_METHOD)
    methods_pkg.__path__.append(str(folder))
    try:
        importlib.reload(registry)
        yield
    finally:
        methods_pkg.__path__.remove(str(folder))
        REGISTERED.pop("zz_max", None)
        sys.modules.pop(f"{methods_pkg.__name__}.zz_max", None)
        importlib.reload(registry)


def test_a_new_method_is_one_module(one_new_module: None, tmp_path: Path) -> None:
    assert "zz_max" in registry.METHOD_NAMES
    a = {"w": torch.tensor([1.0, -2.0, 3.0])}
    b = {"w": torch.tensor([0.5, 4.0, -1.0])}
    out = merge_states(tmp_path, "zz_max", None, [a, b])
    torch.testing.assert_close(out["w"], torch.tensor([1.0, 4.0, 3.0]))


def test_method_table_has_a_row_per_method() -> None:
    rows = registry.method_table().splitlines()[2:]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == registry.METHOD_NAMES
    assert "| linear | linear | normalize (true) | weight |" in rows


def test_recipe_jobs_do_not_import_torch() -> None:
    """`mixmerge recipe` (config -> recipe YAML) runs in jobs that should not pay for torch."""
    code = "import sys, mixmerge.merge.from_config; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"
