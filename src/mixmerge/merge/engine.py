"""Streaming merge: plan (metadata + parameters only), then one tensor at a time to disk.

Inputs are memory-mapped and each tensor's pages are released once it is merged; outputs go
straight to disk. Elementwise merges (linear, task arithmetic, TIES/DARE/... without
sparsification) stream every tensor in cache-sized chunks, converting from the mapped bytes
as they go, so they need no full-size buffers at all; other methods get whole tensors, for a
peak of about (inputs + 1) × the largest tensor in the compute dtype plus the method's own
scratch. Every bad input is found in the planning pass, before the output directory is created; compute-time failures
(NaN/Inf) abort inside `atomic_dir`, so no partial output is ever left behind.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import ctypes
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
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
from mixmerge.model_hash import write_hash

DEFAULT_SHARD_SIZE = "2GB"
# Elements per chunk when streaming elementwise merges and converting outputs: small enough
# for the CPU caches (1 MiB of float32), large enough to amortise per-chunk Python overhead.
CHUNK_CPU = 1 << 18
CHUNK_CUDA = 1 << 24
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
    elementwise: bool = False


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
        plans.append(_TensorPlan(name, True, params, mparams, method.elementwise(params, mparams)))
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


def _convert(
    stored: torch.Tensor,
    dev: torch.device,
    dtype: torch.dtype,
    name: str,
    label: str,
    check: bool = True,
) -> torch.Tensor:
    """Stored (read-only, mapped) tensor -> a fresh, writable one in the compute dtype/device,
    checked for NaN/Inf (on the stored values, or on the converted ones when that is exact)."""
    widening = not check or (
        stored.dtype.is_floating_point
        and (dtype == torch.float64 or (dtype == torch.float32 and stored.dtype != torch.float64))
    )
    if not widening and not all_finite(stored):
        raise MergeError(f"non-finite values (NaN/Inf) in tensor {name} of model {label}")
    t = stored.to(device=dev, dtype=dtype)
    if t.data_ptr() == stored.data_ptr():  # no conversion happened: never touch the mapping
        t = t.clone()
    if check and widening and not all_finite(t):
        raise MergeError(f"non-finite values (NaN/Inf) in tensor {name} of model {label}")
    return t


def _context(
    rec: Recipe,
    plan: _TensorPlan,
    inputs: list[tuple[ModelEntry, ModelFiles]],
    base: ModelFiles | None,
    dev: torch.device,
    seed: int,
    part: Callable[[ModelFiles], torch.Tensor],
    release: bool = False,
    check: bool = True,
) -> TensorContext:
    """The method's view of one tensor (or one chunk of it): each distinct model converted
    once, so inputs that are the same model share one tensor object (see ctx.mutable).
    `release` unmaps each stored tensor as soon as it is converted; `check=False` skips the
    NaN/Inf check of the inputs (the streamed path checks its output instead)."""
    cache: dict[int, torch.Tensor] = {}

    def load(reader: ModelFiles) -> torch.Tensor:
        if id(reader) not in cache:
            cache[id(reader)] = _convert(
                part(reader), dev, rec.dtype, plan.name, reader.label, check
            )
            if release:
                reader.release(plan.name)
        return cache[id(reader)]

    return TensorContext(
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


def _write_checked(
    writer: ShardWriter, name: str, part: torch.Tensor, out_dtype: torch.dtype
) -> None:
    out = part.to(device="cpu", dtype=out_dtype)
    if not all_finite(out):
        raise MergeError(
            f"merged tensor {name} has non-finite values (NaN/Inf) in {dtype_name(out_dtype)}"
        )
    writer.write(out)


def _merge_whole(
    rec: Recipe,
    plan: _TensorPlan,
    inputs: list[tuple[ModelEntry, ModelFiles]],
    base: ModelFiles | None,
    ref: ModelFiles,
    dev: torch.device,
    seed: int,
    writer: ShardWriter,
    out_dtype: torch.dtype,
    chunk: int,
) -> None:
    """Whole tensors in, whole result out; converted and written chunk by chunk."""
    ctx = _context(rec, plan, inputs, base, dev, seed, lambda r: r.view(plan.name), True)
    result = rec.method.merge(ctx)
    del ctx
    if tuple(result.shape) != ref.shape(plan.name):
        raise MergeError(
            f"{rec.method.name} produced shape {list(result.shape)} for tensor {plan.name}, "
            f"expected {list(ref.shape(plan.name))}"
        )
    flat = result.reshape(-1)
    writer.begin(plan.name)
    for s in range(0, flat.numel(), chunk):
        _write_checked(writer, plan.name, flat[s : s + chunk], out_dtype)
    writer.end()


_MALLOC_TUNED = False


def _tune_malloc() -> None:
    """Keep chunk-sized blocks in glibc's heap (once per process).

    By default glibc serves blocks over 128 KiB–32 MiB with fresh mmaps and trims the heap
    top after frees, so every chunk's temporaries are new pages to fault in and zero: that
    page-fault churn, not the arithmetic, dominated streamed merges (≈5× slower). A fixed
    32 MiB mmap threshold and 128 MiB trim threshold keep freed chunks for reuse; blocks over
    32 MiB (whole large tensors) are still mapped and returned to the OS on free, so peak RSS
    grows by at most the trim threshold. Not glibc (or MIXMERGE_NO_MALLOPT=1): no-op.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED or os.environ.get("MIXMERGE_NO_MALLOPT"):
        return
    _MALLOC_TUNED = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 128 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def _intra_op_threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    if old == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _merge_streamed(
    rec: Recipe,
    plan: _TensorPlan,
    inputs: list[tuple[ModelEntry, ModelFiles]],
    base: ModelFiles | None,
    ref: ModelFiles,
    dev: torch.device,
    seed: int,
    writer: ShardWriter,
    out_dtype: torch.dtype,
    chunk: int,
    pool: concurrent.futures.ThreadPoolExecutor | None = None,
    workers: int = 1,
) -> None:
    """Elementwise method: merge() runs on 1-D chunks taken straight from the mapped inputs.

    Chunk-sized ops gain nothing from intra-op threads (on a busy machine they lose a lot to
    thread hand-offs), so each op runs on one thread and `pool` computes several chunks at
    once instead (torch releases the GIL); chunks are written in order, so the output does
    not depend on the number of workers.
    """
    n = 1
    for d in ref.shape(plan.name):
        n *= d
    readers = [r for _, r in inputs] + ([base] if base is not None else [])
    flat = {id(r): r.view(plan.name).reshape(-1) for r in readers}  # made here: not thread-safe

    def part(r: ModelFiles, s: int, e: int) -> torch.Tensor:
        return flat[id(r)][s:e]

    def work(s: int, e: int) -> torch.Tensor:
        ctx = _context(rec, plan, inputs, base, dev, seed, lambda r: part(r, s, e), check=False)
        result = rec.method.merge(ctx)
        if tuple(result.shape) != (e - s,):
            raise MergeError(
                f"{rec.method.name} produced shape {list(result.shape)} for a chunk of "
                f"tensor {plan.name}, expected [{e - s}]"
            )
        out = result.to(device="cpu", dtype=out_dtype)
        if not all_finite(out):  # find the input that caused it, if one did
            for r in readers:
                if not all_finite(part(r, s, e)):
                    raise MergeError(
                        f"non-finite values (NaN/Inf) in tensor {plan.name} of model {r.label}"
                    )
            raise MergeError(
                f"merged tensor {plan.name} has non-finite values (NaN/Inf) in "
                f"{dtype_name(out_dtype)}"
            )
        return out

    window = 2 * workers if pool is not None else 1
    pending: collections.deque = collections.deque()
    done = 0

    def write_next() -> None:
        nonlocal done
        e, fut = pending.popleft()
        writer.write(fut.result() if pool is not None else fut)
        done += 1
        if done % 64 == 0:  # unmap what is written, so a huge tensor never piles up
            for r in {id(r): r for r in readers}.values():
                r.release(plan.name, e * flat[id(r)].element_size())

    writer.begin(plan.name)
    with _intra_op_threads(1 if dev.type == "cpu" else torch.get_num_threads()):
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            pending.append((e, pool.submit(work, s, e) if pool is not None else work(s, e)))
            while len(pending) >= window:
                write_next()
        while pending:
            write_next()
    writer.end()


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
    _tune_malloc()

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

        # Workers for streamed (elementwise) tensors: one per intra-op thread torch would use.
        workers = torch.get_num_threads() if dev.type == "cpu" else 1
        pool = stack.enter_context(concurrent.futures.ThreadPoolExecutor(workers))
        with atomic_dir(out_dir) as tmp:
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
            chunk = CHUNK_CUDA if dev.type == "cuda" else CHUNK_CPU
            bar = tqdm(plans, desc=f"merge:{method.name}", unit="tensor", disable=not progress)
            for i, plan in enumerate(bar):
                if i + 1 < len(plans):  # read-ahead of the next tensor (matters on a cold cache)
                    for r in distinct if plans[i + 1].is_float else [ref]:
                        r.willneed(plans[i + 1].name)
                if not plan.is_float:
                    writer.add(plan.name, ref.get(plan.name))
                else:
                    args = (rec, plan, inputs, base, ref, dev, seed, writer, out_dtype, chunk)
                    if plan.elementwise:
                        _merge_streamed(*args, pool=pool if workers > 1 else None, workers=workers)
                    else:
                        _merge_whole(*args)
                for r in distinct:
                    r.release(plan.name)
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
            write_hash(tmp, writer.sha256)  # the shards were hashed as they were written
            with atomic_file(tmp / "README.md") as fh:
                fh.write(_model_card(rec, out_dtype, seed))
