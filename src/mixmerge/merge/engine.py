"""Streaming merge: plan (metadata + parameters only), then one tensor at a time to disk.

`plan.py` opens the inputs and checks everything that can be checked without reading a tensor;
`execute.py` merges the tensors one at a time, straight into the output shards. This module
runs the two inside `atomic_dir` and writes the rest of the model directory (config, tokenizer
files, the recipe as run, the weights' hash, a model card): every bad input is found before the
output directory is created, and a compute-time failure (NaN/Inf) leaves no partial output.

With a tokenizer block the output gets the planned tokenizer (mixmerge.merge.vocab.write_tokenizer)
and config.json's vocab_size, instead of the reference model's tokenizer files.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from mixmerge.io import atomic_dir, atomic_file, write_json
from mixmerge.merge.errors import MergeError
from mixmerge.merge.execute import merge_tensors, tune_malloc
from mixmerge.merge.modelio import ShardWriter, parse_size
from mixmerge.merge.plan import MergeJob, plan_merge
from mixmerge.merge.recipe import Recipe, dtype_name, load_recipe
from mixmerge.merge.resident import ResidentWriter
from mixmerge.merge.vocab import (
    SLOW_TOKENIZER_FILES,
    TOKENIZER_JSON,
    TOKENIZER_SIDE_FILES,
    set_config_vocab_size,
)
from mixmerge.merge.vocab_plan import write_tokenizer
from mixmerge.model_hash import write_hash

DEFAULT_SHARD_SIZE = "2GB"
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
        *([f"- vocabulary: `{recipe.tokenizer.describe()}`"] if recipe.tokenizer else []),
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


def _write_model_files(job: MergeJob, out: Path, weights_sha256: dict[str, str]) -> None:
    """Everything of the model directory but the weights: config, tokenizer, recipe, card."""
    ref, rec, out_dtype = job.ref, job.recipe, job.out_dtype
    config = dict(ref.config)
    config["dtype"] = dtype_name(out_dtype)
    if "torch_dtype" in config:
        config["torch_dtype"] = dtype_name(out_dtype)
    tokenizer_files = {TOKENIZER_JSON, *TOKENIZER_SIDE_FILES, *SLOW_TOKENIZER_FILES}
    if job.vocab is not None:
        set_config_vocab_size(config, job.vocab.rows)
    write_json(out / "config.json", config)
    for fname in COPIED_FILES:
        if job.vocab is not None and fname in tokenizer_files:
            continue
        if (ref.path / fname).is_file():
            shutil.copyfile(ref.path / fname, out / fname)
    if job.vocab is not None:
        write_tokenizer(job.vocab, out)
    with atomic_file(out / "mixmerge_recipe.yaml") as fh:
        fh.write(f"# mixmerge.merge recipe as run; seed: {job.seed}\n")
        yaml.safe_dump(rec.raw, fh, sort_keys=False)
    write_hash(out, weights_sha256)  # the shards were hashed as they were written
    with atomic_file(out / "README.md") as fh:
        fh.write(_model_card(rec, out_dtype, job.seed))


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
    tune_malloc()

    with contextlib.ExitStack() as stack:
        job = plan_merge(rec, stack, dev, 0 if seed is None else int(seed))
        ref = job.ref
        with atomic_dir(out_dir) as tmp:
            writer = ShardWriter(
                tmp,
                shard_bytes,
                [
                    (p.name, p.shape, job.out_dtype if p.is_float else ref.dtype(p.name))
                    for p in job.tensors
                ],
            )
            stack.callback(writer.abort)
            merge_tensors(job, writer, progress)
            writer.finish()
            _write_model_files(job, tmp, writer.sha256)


def output_dtype(recipe: str | Path | Mapping[str, Any]) -> torch.dtype:
    """The dtype a merge of `recipe` writes (out_dtype, else the checkpoint's), read from the
    recipe and the models' headers only."""
    with contextlib.ExitStack() as stack:
        return plan_merge(load_recipe(recipe), stack, torch.device("cpu"), 0).out_dtype


def merge_into(
    recipe: str | Path | Mapping[str, Any],
    targets: Mapping[str, torch.Tensor],
    device: str = "cpu",
    seed: int | None = None,
    progress: bool = False,
) -> str:
    """Merge `recipe` into `targets` (the state dict of a model in memory, in the merge's output
    dtype) instead of a model directory; return the merged weights' content digest.

    Every tensor of the merge must have its place in `targets`, and every float tensor of
    `targets` must be written (tied tensors count once): a trial never scores a half-merged model.
    """
    rec = load_recipe(recipe)
    tune_malloc()
    with contextlib.ExitStack() as stack:
        job = plan_merge(rec, stack, torch.device(device), 0 if seed is None else int(seed))
        for p in job.tensors:
            if p.name in targets and tuple(targets[p.name].shape) != p.shape:
                raise MergeError(
                    f"tensor {p.name}: the merge makes {list(p.shape)}, the resident model has "
                    f"{list(targets[p.name].shape)}"
                )
        writer = ResidentWriter(targets)
        merge_tensors(job, writer, progress)
    storages = {t.untyped_storage().data_ptr() for n, t in targets.items() if n in writer.written}
    missed = [
        n for n, t in targets.items()
        if t.is_floating_point() and t.untyped_storage().data_ptr() not in storages
    ]
    if missed:
        raise MergeError(f"the merge wrote no values for {len(missed)} tensors, e.g. {missed[0]}")
    return writer.digest()
