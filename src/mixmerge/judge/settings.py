"""The judge's settings, built once from a config block, and the registry of judge backends.

`JudgeSettings` holds every judge key of the config schema (`$defs.judge`) with its default, the
one place the defaults live. A backend is one module under mixmerge/judge/backends/ that ends
with its `register_backend(...)` call: its factory (settings, cache_dir) -> Judge, and the
API-key variable it reads by default (None: it needs no key), which the key warning uses.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mixmerge.catalog import judged_benchmarks


@dataclass(frozen=True)
class Backend:
    """A judge backend: its factory and what it needs."""

    name: str
    factory: Callable[[JudgeSettings, str | Path | None], Any]  # settings, cache_dir -> Judge
    api_key_env: str | None = None  # the variable holding its API key by default; None = no key
    defaults: Mapping[str, Any] = field(default_factory=dict)  # settings this name implies
    loads_model: bool = False  # its `model` is a hub model or local folder (mirrored by fetch)
    doc: str = ""


_BACKENDS: dict[str, Backend] = {}


def register_backend(
    name: str,
    factory: Callable[[JudgeSettings, str | Path | None], Any],
    *,
    api_key_env: str | None = None,
    defaults: Mapping[str, Any] | None = None,
    loads_model: bool = False,
    doc: str = "",
) -> Backend:
    """Called by each module of mixmerge/judge/backends/ for the backend(s) it provides."""
    if name in _BACKENDS:
        raise ValueError(f"judge backend {name!r} is registered twice")
    _BACKENDS[name] = Backend(name, factory, api_key_env, dict(defaults or {}), loads_model, doc)
    return _BACKENDS[name]


def backends() -> dict[str, Backend]:
    """Every registered backend: the modules of mixmerge/judge/backends/, imported on first use
    (each imports its heavy library, openai or torch, only when a judge is made)."""
    if not _BACKENDS:
        import mixmerge.judge.backends as package

        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")
    return _BACKENDS


def backend(name: str) -> Backend:
    known = backends()
    if name not in known:
        raise ValueError(f"unknown judge backend {name!r} (known: {', '.join(sorted(known))})")
    return known[name]


_UNSET = "<backend default>"


@dataclass(frozen=True)
class JudgeSettings:
    """One judge's settings (config `evaluate.judge`, a benchmark's `judge`, `mixtures.hummer.judge`).

    Common: backend, model (required to judge), temperature, max_tokens (None: openai = the
    server's default, hf = 512), cache_dir (None = no cache).
    openai: base_url (None = api.openai.com), api_key_env (the backend's variable unless set;
    None = no key), max_retries (re-asks on an unparsable reply), api_max_retries (retries with
    exponential backoff + jitter on 429/408/409/5xx/timeouts/connection errors), backoff_base,
    backoff_max, timeout (s), concurrency, price_input_per_1k / price_output_per_1k (USD; None =
    no cost estimate).
    hf: mode (generate | likelihood; None = the backend's), device (None = cuda if available,
    else cpu), dtype, batch_size, max_length (None = the model's context), revision,
    trust_remote_code (an explicit opt-in: it runs hub code).
    """

    backend: str = "hf"
    model: str | None = None
    temperature: float = 0.0
    max_tokens: int | None = None
    cache_dir: str | None = None
    base_url: str | None = None
    api_key_env: str | None = _UNSET
    max_retries: int = 3
    api_max_retries: int = 8
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    timeout: float = 120.0
    concurrency: int = 8
    price_input_per_1k: float | None = None
    price_output_per_1k: float | None = None
    mode: str | None = None
    device: str | None = None
    dtype: str = "auto"
    batch_size: int = 8
    max_length: int | None = None
    revision: str | None = None
    trust_remote_code: bool = False

    @classmethod
    def from_config(cls, block: Mapping[str, Any] | None) -> JudgeSettings:
        """From a validated judge block; keys set to null take the default, except api_key_env
        (null = no key). The backend's own defaults (e.g. local's likelihood mode) apply."""
        block = dict(block or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(block) - known)
        if unknown:
            raise ValueError(f"unknown judge key {unknown[0]!r} (known: {', '.join(sorted(known))})")
        values = {k: v for k, v in block.items() if v is not None or k == "api_key_env"}
        chosen = backend(values.get("backend", cls.backend))
        return cls(**{**chosen.defaults, **values})

    @property
    def key_variable(self) -> str | None:
        """The environment variable holding the API key this judge reads (None: none; a backend
        registered without a key variable reads none, whatever api_key_env says)."""
        default = backend(self.backend).api_key_env
        if default is None or self.api_key_env == _UNSET:
            return default
        return self.api_key_env


def make_judge_from_settings(settings: JudgeSettings, cache_dir: str | Path | None = None) -> Any:
    """Build the judge `settings` describe (its backend's factory)."""
    cache = cache_dir if cache_dir is not None else settings.cache_dir
    return backend(settings.backend).factory(settings, cache)


def missing_api_keys(
    config: dict[str, Any], environ: Mapping[str, str] = os.environ
) -> dict[str, list[str]]:
    """API-key variables that the configured API judges read but that are unset in `environ`:
    variable -> the config entries whose jobs will fail without it. Names only, never values.

    A warning, not a config error: dry runs and the stages before evaluation need no key."""
    evaluate = config.get("evaluate", {})
    judges: dict[str, dict[str, Any]] = {}
    judged = judged_benchmarks()
    for name, bench in (evaluate.get("benchmarks") or {}).items():
        if name in judged:
            judge = {**(evaluate.get("judge") or {}), **((bench or {}).get("judge") or {})}
            judges[f"evaluate.benchmarks.{name}"] = judge
    mixtures = config.get("mixtures") or {}
    if "hummer" in (mixtures.get("strategies") or []):
        hummer = mixtures.get("hummer") or {}
        judges["mixtures.hummer"] = dict(hummer.get("judge") or evaluate.get("judge") or {})
    missing: dict[str, list[str]] = {}
    for where, judge in judges.items():
        variable = JudgeSettings.from_config(judge).key_variable
        if variable and not environ.get(variable):
            missing.setdefault(variable, []).append(where)
    return missing
