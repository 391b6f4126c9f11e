"""The conda environments of `envs/` (snakemake --sdm conda) stay in sync with pyproject.toml.

Each rule group (train, merge, judge, eval, report) has an env file that pins, with pyproject's
exact specifiers, the packages its rules' `mixmerge` verbs import: found by following the
verbs' imports through the package's source (static, so it also sees imports inside functions,
and benchmark modules named in the evaluation registry). mixmerge itself is installed into each
env by the post-deploy script, which is exercised here in a bare venv.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from workflow_rules import RULES, rules

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
ENVS = REPO / "envs"
GROUPS = {"train", "merge", "judge", "eval", "report"}
# Imported only when a user picks them (evaluate.backend: vllm), never in a default run.
OPTIONAL_IMPORTS = {"vllm"}


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _pins() -> dict[str, Requirement]:
    reqs = [Requirement(r) for r in _pyproject()["project"]["dependencies"]]
    return {canonicalize_name(r.name): r for r in reqs}


def _env(group: str) -> dict:
    return yaml.safe_load((ENVS / f"{group}.yaml").read_text())


def _env_pins(group: str) -> dict[str, Requirement]:
    deps = _env(group)["dependencies"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    reqs = [Requirement(r) for r in pip]
    names = [canonicalize_name(r.name) for r in reqs]
    assert len(names) == len(set(names)), f"envs/{group}.yaml lists a package twice"
    return dict(zip(names, reqs, strict=True))


# ---- which verb (and so which imports) each rule runs, in which env -------------------------


def _module_file(name: str) -> Path | None:
    base = SRC / name.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imported_names(nodes: list[ast.AST], module: str) -> set[str]:
    """Every module (and `module.attr`) the nodes import, relative imports resolved."""
    package = module if _module_file(module).name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in (n for root in nodes for n in ast.walk(root)):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(parts + ([node.module] if node.module else []))
            else:
                target = node.module
            out.add(target)
            out |= {f"{target}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            # "module:function" targets of the benchmark registry, imported by name at run time
            m = re.fullmatch(r"(mixmerge(?:\.\w+)+):\w+", node.value)
            if m:
                out.add(m.group(1))
    return out


@cache
def _module_imports(module: str) -> frozenset[str]:
    path = _module_file(module)
    if not path:
        return frozenset()
    names = _imported_names([ast.parse(path.read_text())], module)
    if "pkgutil" in names:  # a registry importing every module of a plugin package
        for name in list(names):
            folder = SRC / name.replace(".", "/")
            if name.startswith("mixmerge.") and (folder / "__init__.py").is_file():
                names |= {f"{name}.{p.stem}" for p in folder.glob("*.py") if p.stem != "__init__"}
    return frozenset(names)


def _third_party_imports(start: set[str]) -> set[str]:
    """Top-level third-party modules reachable from `start` through mixmerge's own modules
    (whole modules: conservative, since a function's imports count even if it is not called)."""
    seen: set[str] = set()
    found: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        top = name.split(".")[0]
        if top != "mixmerge":
            found.add(top)
            continue
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
            module = ".".join(parts[:i])
            if module not in seen and _module_file(module):
                seen.add(module)
                todo.extend(_module_imports(module))
    return found - set(sys.stdlib_module_names)


def _reachable_defs(tree: ast.Module, func: ast.FunctionDef) -> list[ast.AST]:
    """`func` and the module-level functions and classes it names, transitively."""
    defs = {d.name: d for d in tree.body if isinstance(d, ast.FunctionDef | ast.ClassDef)}
    found, todo = {func.name: func}, [func]
    while todo:
        for node in ast.walk(todo.pop()):
            if isinstance(node, ast.Name) and node.id in defs and node.id not in found:
                found[node.id] = defs[node.id]
                todo.append(defs[node.id])
    return list(found.values())


def _verb_imports(verb: str) -> set[str]:
    """What `mixmerge <verb>` can import: the CLI module's top level, its command function's own
    imports, and everything reachable from those."""
    tree = ast.parse((SRC / "mixmerge" / "cli.py").read_text())
    funcs = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    assert f"cmd_{verb}" in funcs, f"mixmerge has no verb {verb!r}"
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    names = _imported_names([*top, funcs[f"cmd_{verb}"], funcs["_config"]], "mixmerge.cli")
    # `from mixmerge.x import f`: x's top level and f's own imports, not x's other functions'
    entry: set[str] = set()
    partial: set[str] = set()  # modules entered through one of their functions only
    for name in names:
        module, _, attr = name.rpartition(".")
        path = _module_file(module) if module.startswith("mixmerge") else None
        if path is None or _module_file(name):
            entry.add(name)
            continue
        tree = ast.parse(path.read_text())
        func = next((f for f in tree.body if getattr(f, "name", None) == attr), None)
        if isinstance(func, ast.FunctionDef):
            partial.add(module)
            top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
            entry |= _imported_names([*top, *_reachable_defs(tree, func)], module)
            entry.add(module.rpartition(".")[0])  # its packages' __init__ run first
        else:
            entry.add(name)
    return _third_party_imports(entry - partial)
    return _third_party_imports(entry)


@cache
def _distributions(import_name: str) -> set[str]:
    dists = importlib.metadata.packages_distributions().get(import_name, [])
    return {canonicalize_name(d) for d in dists}


# ---- the tests --------------------------------------------------------------------------------


def test_one_env_per_rule_group_and_every_rule_uses_one() -> None:
    assert {p.stem for p in ENVS.glob("*.yaml")} == GROUPS
    by_name = rules()
    assert len(by_name) > 15, "the rule parser found too few rules"
    for name, rule in by_name.items():
        if rule["verb"]:
            assert rule["env"] in GROUPS, f"rule {name} runs mixmerge without a conda env"
    assert {r["env"] for r in by_name.values() if r["env"]} == GROUPS, "an env no rule uses"


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_env_pins_are_pyprojects(group: str) -> None:
    pins = _pins()
    for name, req in _env_pins(group).items():
        assert name in pins, f"envs/{group}.yaml: {req} is not a dependency in pyproject.toml"
        assert str(req) == str(pins[name]), (
            f"envs/{group}.yaml pins {req}, pyproject.toml pins {pins[name]}"
        )
    python = next(d for d in _env(group)["dependencies"] if str(d).startswith("python="))
    version = python.split("=", 1)[1]
    assert version in SpecifierSet(_pyproject()["project"]["requires-python"]), python


def test_core_pins_are_in_every_env() -> None:
    """What every verb imports (config loading, progress) is in every env."""
    core = _third_party_imports({"mixmerge.config", "mixmerge.io"})
    core_dists = {d for name in core for d in _distributions(name)}
    assert core_dists >= {"pyyaml", "jsonschema"}
    for group in GROUPS:
        assert core_dists <= set(_env_pins(group)), f"envs/{group}.yaml misses {core_dists}"


@pytest.mark.parametrize("rule", sorted(n for n, r in rules().items() if r["verb"]))
def test_env_has_what_the_rules_verb_imports(rule: str) -> None:
    info = rules()[rule]
    have = set(_env_pins(info["env"]))
    for name in sorted(_verb_imports(info["verb"]) - OPTIONAL_IMPORTS):
        dists = _distributions(name)
        assert dists, f"`import {name}` (mixmerge {info['verb']}) is not installed here"
        assert dists & have, (
            f"rule {rule} runs `mixmerge {info['verb']}`, which imports {name}, "
            f"but envs/{info['env']}.yaml does not pin {' or '.join(sorted(dists))}"
        )


def test_the_import_walk_sees_lazy_and_registry_imports() -> None:
    """The checks above are only as good as the walk: it must find imports inside functions and
    the benchmark modules the registry names as strings, the plugin packages a registry imports
    module by module (judge backends, merge methods), and must not over-reach."""
    evaluate = _verb_imports("evaluate")
    assert {"lm_eval", "evalplus", "openai", "torch", "datasets"} <= evaluate
    assert {"trl", "peft"} <= _verb_imports("train")
    assert "torch" not in _verb_imports("report")  # report's run_diagnose is not report's
    assert "torch" in _verb_imports("diagnose")
    assert "trl" not in _verb_imports("merge")


def test_pyproject_declares_every_import_of_the_package() -> None:
    everything = _third_party_imports({"mixmerge"} | {
        "mixmerge." + ".".join(p.relative_to(SRC / "mixmerge").with_suffix("").parts)
        for p in (SRC / "mixmerge").rglob("*.py")
    })
    declared = set(_pins())
    for name in sorted(everything - OPTIONAL_IMPORTS):
        dists = _distributions(name)
        assert dists & declared, f"mixmerge imports {name} but pyproject.toml does not declare it"


def test_every_env_has_the_post_deploy_install() -> None:
    script = ENVS / "install-mixmerge.sh"
    for group in GROUPS:
        hook = ENVS / f"{group}.post-deploy.sh"
        assert hook.resolve() == script.resolve(), f"{hook.name} must link to {script.name}"
    assert "MIXMERGE_SRC" in (RULES / "common.smk").read_text()


def _bare_venv(path: Path) -> dict[str, str]:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
    return {**os.environ, "PATH": f"{path / 'bin'}{os.pathsep}{os.environ['PATH']}"}


def test_post_deploy_installs_this_checkout(tmp_path: Path) -> None:
    env = _bare_venv(tmp_path / "env")
    env["MIXMERGE_SRC"] = str(REPO)
    proc = subprocess.run(
        ["bash", str(ENVS / "install-mixmerge.sh")], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    python = tmp_path / "env" / "bin" / "python"
    where = subprocess.run(
        [str(python), "-c", "import mixmerge; print(mixmerge.__file__)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert Path(where) == SRC / "mixmerge" / "__init__.py"  # editable: the checkout's code
    # no dependencies were installed: those come from the env file
    assert "torch" not in subprocess.run(
        [str(python), "-m", "pip", "list"], capture_output=True, text=True, check=True
    ).stdout
    usage = subprocess.run(
        [str(tmp_path / "env" / "bin" / "mixmerge"), "--help"], capture_output=True, text=True
    )
    assert usage.returncode == 0 and "evaluate" in usage.stdout, usage.stderr


def test_post_deploy_without_the_checkout_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MIXMERGE_SRC"}
    proc = subprocess.run(
        ["bash", str(ENVS / "install-mixmerge.sh")], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "install-mixmerge.sh: MIXMERGE_SRC must name the mixmerge checkout (got '')"
    ]


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_env_pins_hold_for_the_tested_versions(group: str) -> None:
    """What the test suite runs on satisfies every env file (the stand-in conda's "solve")."""
    import stand_in_conda

    assert stand_in_conda.solve(ENVS / f"{group}.yaml") == []


def test_stand_in_conda_refuses_an_unsatisfiable_env(tmp_path: Path) -> None:
    import stand_in_conda

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "dependencies:\n  - python=3.9\n  - pip:\n      - torch<1\n      - not-a-package-xyz\n"
    )
    bin_dir = stand_in_conda.install(tmp_path / "conda")
    proc = subprocess.run(
        [str(bin_dir / "conda"), "env", "create", "--file", str(bad), "--prefix", str(tmp_path / "e")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and not (tmp_path / "e").exists()
    for problem in ("python=3.9: found python 3.", "torch<1: found ", "not-a-package-xyz: not installed"):
        assert problem in proc.stdout, proc.stdout
