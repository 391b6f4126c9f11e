"""Streaming merge: plan (metadata + parameters only), then one tensor at a time to disk.

Peak memory ≈ (inputs + 1) × largest tensor (compute dtype) + the read-ahead of the next
tensor (≤ PREFETCH_BYTES); outputs go straight to disk, inputs are read with pread (no
memory map whose pages would stay resident). Every bad input is
found in the planning pass, before the output directory is created; compute-time failures
(NaN/Inf) abort inside `atomic_dir`, so no partial output is ever left behind.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm.auto import tqdm

from mixmerge.io import atomic_dir, atomic_file, write_json
from mixmerge.merge.base import TensorContext
from mixmerge.merge.errors import MergeError
from mixmerge.merge.modelio import FLOAT_DTYPES, ModelFiles, ShardWriter, parse_size
from mixmerge.merge.recipe import (
    ModelEntry,
    Recipe,
    dtype_name,
    gradient_t,
    load_recipe,
    resolve_global,
    resolve_model,
)

DEFAULT_SHARD_SIZE = "2GB"
# Raw bytes (all inputs together) of the next tensor that may be read ahead while the current
# one is merged; larger tensors are read when their turn comes, keeping peak memory bounded.
PREFETCH_BYTES = 512 * 2**20
# Copied verbatim from the reference model (base, else the first model) when present.
COPIED_FILES = (
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
    "tokenizer.model",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
)


@dataclass
class _TensorPlan:
    name: str
    is_float: bool
    params: dict[str, Any]
    model_params: list[dict[str, Any]]


def _open_models(recipe: Recipe, stack: contextlib.ExitStack) -> dict[Path, ModelFiles]:
    """One reader per distinct directory (a model listed twice is opened once)."""
    readers: dict[Path, ModelFiles] = {}
    refs = [(e.label, e.path) for e in recipe.models]
    if recipe.base_path is not None:
        refs.insert(0, (recipe.base_label or "", recipe.base_path))
    for label, path in refs:
        key = path.resolve()
        if key not in readers:
            readers[key] = ModelFiles(label, path)
            readers[key].open(stack)
    return readers


def _plan(
    recipe: Recipe, ref: ModelFiles, inputs: list[tuple[ModelEntry, ModelFiles]]
) -> list[_TensorPlan]:
    method = recipe.method
    num_layers = int(ref.config.get("num_hidden_layers") or 1)
    plans = []
    for name in ref.names:
        shape = ref.shape(name)
        is_float = ref.st_dtype(name) in FLOAT_DTYPES
        for entry, reader in inputs:
            if not reader.has(name):
                raise MergeError(f"tensor {name} missing from model {entry.label}")
            other = reader.shape(name)
            if other != shape:
                raise MergeError(
                    f"shape mismatch for tensor {name}: model {entry.label} has {list(other)}, "
                    f"{ref.label} has {list(shape)}"
                )
        if not is_float:  # integer buffers etc. are copied from the reference model
            plans.append(_TensorPlan(name, False, {}, []))
            continue
        t = gradient_t(name, num_layers)
        params = {p.name: resolve_global(recipe, p, name, t) for p in method.global_params}
        mparams = [
            {p.name: resolve_model(recipe, e, p, name, t) for p in method.model_params}
            for e, _ in inputs
        ]
        method.validate(name, params, mparams, [e.label for e, _ in inputs])
        plans.append(_TensorPlan(name, True, params, mparams))
    return plans


def all_finite(t: torch.Tensor) -> bool:
    """NaN/Inf check without a full-size boolean temporary.

    Any NaN/Inf entry makes the sum non-finite; only a finite tensor whose sum overflows
    (e.g. fp16 weights summed) needs the exact elementwise check.
    """
    if t.numel() == 0:
        return True
    acc = torch.float64 if t.dtype == torch.float64 else torch.float32
    if bool(torch.isfinite(torch.sum(t, dtype=acc))):
        return True
    return bool(torch.isfinite(t).all())


def _fetch(readers: list[ModelFiles], name: str) -> dict[int, torch.Tensor]:
    """Raw tensors (stored dtype, CPU) of one name from every distinct model."""
    return {id(r): r.get(name) for r in readers}


def _merge_tensor(
    rec: Recipe,
    plan: _TensorPlan,
    inputs: list[tuple[ModelEntry, ModelFiles]],
    base: ModelFiles | None,
    dev: torch.device,
    seed: int,
    raw: dict[int, torch.Tensor],
) -> torch.Tensor:
    """Convert this tensor of every input (once per distinct model) and run the method."""
    cache: dict[int, torch.Tensor] = {}

    def load(reader: ModelFiles) -> torch.Tensor:
        if id(reader) not in cache:
            t = raw.pop(id(reader))  # dropped as soon as converted
            if not all_finite(t):
                raise MergeError(
                    f"non-finite values (NaN/Inf) in tensor {plan.name} of model {reader.label}"
                )
            cache[id(reader)] = t.to(device=dev, dtype=rec.dtype)
        return cache[id(reader)]

    ctx = TensorContext(
        name=plan.name,
        tensors=[load(r) for _, r in inputs],
        model_params=plan.model_params,
        params=plan.params,
        base=load(base) if base is not None else None,
        model_indices=[e.index for e, _ in inputs],
        model_labels=[e.label for e, _ in inputs],
        seed=seed,
        device=dev,
        dtype=rec.dtype,
    )
    return rec.method.merge(ctx)


def _model_card(recipe: Recipe, out_dtype: torch.dtype, seed: int) -> str:
    method = recipe.method
    lines = [
        "---",
        "library_name: transformers",
        "tags: [merge, mixmerge]",
        "---",
        "",
        f"# Merged model ({method.pretty_name or method.name})",
        "",
        f"Produced by `mixmerge.merge` with MergeKit-compatible `{method.name}` semantics"
        + (f" ({method.reference_url})." if method.reference_url else "."),
        "",
        f"- base model: `{recipe.base_label}`" if recipe.base_label else "- base model: none",
        f"- arithmetic dtype: {dtype_name(recipe.dtype)}; output dtype: {dtype_name(out_dtype)}",
        f"- seed: {seed}",
        "",
        "## Models",
        "",
    ]
    for e in recipe.models:
        lines.append(f"- `{e.label}`: {json.dumps(dict(e.params), sort_keys=True)}")
    lines += [
        "",
        "## Parameters",
        "",
        f"{json.dumps(dict(recipe.params), sort_keys=True)}",
        "",
        "## Recipe",
        "",
        "```yaml",
        yaml.safe_dump(recipe.raw, sort_keys=False).rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def run_merge(
    recipe: str | Path | Mapping[str, Any],
    out_dir: str | Path,
    device: str = "cpu",
    seed: int | None = None,
    progress: bool = True,
    *,
    max_shard_size: int | str = DEFAULT_SHARD_SIZE,
) -> None:
    """Merge the models of a MergeKit-style `recipe` into the HF model directory `out_dir`.

    `seed` feeds the per-tensor RNG of random methods (None -> 0, so runs are reproducible).
    Raises MergeError, with nothing written, on any bad input.
    """
    rec = load_recipe(recipe)
    shard_bytes = parse_size(max_shard_size)
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise MergeError(f"unknown device {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MergeError(f"device {device!r} requested but CUDA is not available")
    seed = 0 if seed is None else int(seed)
    method = rec.method

    with contextlib.ExitStack() as stack:
        readers = _open_models(rec, stack)
        ref_path = rec.base_path if rec.base_path is not None else rec.models[0].path
        ref = readers[ref_path.resolve()]
        base = readers[rec.base_path.resolve()] if rec.base_path is not None else None
        # GTA-style methods skip a listed base (its task vector is zero), as MergeKit does.
        inputs = [
            (e, readers[e.path.resolve()])
            for e in rec.models
            if not (method.needs_base and base is not None and readers[e.path.resolve()] is base)
        ]
        plans = _plan(rec, ref, inputs)
        out_dtype = rec.out_dtype or ref.float_dtype() or rec.dtype

        with atomic_dir(out_dir) as tmp, concurrent.futures.ThreadPoolExecutor(1) as pool:
            writer = ShardWriter(
                tmp,
                shard_bytes,
                [
                    (p.name, ref.shape(p.name), out_dtype if p.is_float else ref.dtype(p.name))
                    for p in plans
                ],
            )
            stack.callback(writer.abort)
            distinct = list({id(r): r for r in [*(r for _, r in inputs), base] if r}.values())

            def fetch(i: int) -> dict[int, torch.Tensor]:
                return _fetch(distinct, plans[i].name) if plans[i].is_float else {}

            # Read tensor i+1 in a background thread while tensor i is merged (pread releases
            # the GIL); only tensors whose raw bytes fit PREFETCH_BYTES, to bound memory.
            def start(i: int) -> concurrent.futures.Future | None:
                if i >= len(plans) or not plans[i].is_float:
                    return None
                size = sum(r.nbytes(plans[i].name) for r in distinct)
                return pool.submit(fetch, i) if size <= PREFETCH_BYTES else None

            bar = tqdm(plans, desc=f"merge:{method.name}", unit="tensor", disable=not progress)
            pending = start(0)
            for i, plan in enumerate(bar):
                name = plan.name
                raw = pending.result() if pending is not None else fetch(i)
                pending = start(i + 1)
                if not plan.is_float:
                    writer.add(name, ref.get(name))
                    continue
                result = _merge_tensor(rec, plan, inputs, base, dev, seed, raw)
                del raw
                if tuple(result.shape) != ref.shape(name):
                    raise MergeError(
                        f"{method.name} produced shape {list(result.shape)} for tensor {name}, "
                        f"expected {list(ref.shape(name))}"
                    )
                out = result.to(device="cpu", dtype=out_dtype)
                del result
                if not all_finite(out):
                    raise MergeError(
                        f"merged tensor {name} has non-finite values (NaN/Inf) "
                        f"in {dtype_name(out_dtype)}"
                    )
                writer.add(name, out)
                del out
            bar.close()
            writer.finish()

            config = dict(ref.config)
            config["dtype"] = dtype_name(out_dtype)
            if "torch_dtype" in config:
                config["torch_dtype"] = dtype_name(out_dtype)
            write_json(tmp / "config.json", config)
            for fname in COPIED_FILES:
                if (ref.path / fname).is_file():
                    shutil.copyfile(ref.path / fname, tmp / fname)
            with atomic_file(tmp / "mixmerge_recipe.yaml") as fh:
                fh.write(f"# mixmerge.merge recipe as run; seed: {seed}\n")
                yaml.safe_dump(rec.raw, fh, sort_keys=False)
            with atomic_file(tmp / "README.md") as fh:
                fh.write(_model_card(rec, out_dtype, seed))
