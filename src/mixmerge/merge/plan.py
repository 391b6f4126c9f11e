"""The plan of one merge, from metadata and parameters only: no tensor is read.

Planning opens every input (one reader per distinct directory), checks that each model has
every tensor of the reference model (the base, else the first model) with the same shape,
resolves and validates each tensor's parameters, and decides per tensor whether it streams
(elementwise) or needs whole tensors. Every bad input is found here, before the output
directory is created.

With a `tokenizer:` block (mixmerge.merge.vocab) the output vocabulary and every model's
permutation into it are planned here too: the vocabulary-indexed tensors (embeddings, LM head)
may then differ in their rows (dim 0) and get the output vocabulary's rows; their other dims must
still match. Without one, differing rows are a shape mismatch whose one-line error names the
tensor, both shapes and the tokenizer block that would align them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mixmerge.merge.errors import MergeError
from mixmerge.merge.modelio import FLOAT_DTYPES, ModelFiles
from mixmerge.merge.recipe import ModelEntry, Recipe, gradient_t, resolve_global, resolve_model
from mixmerge.merge.vocab import SOURCE_HINT, is_vocab_tensor
from mixmerge.merge.vocab_plan import VocabModel, VocabPlan, plan_vocab


@dataclass
class TensorPlan:
    """One output tensor: a float one is merged with these resolved parameters, any other
    (integer buffers etc.) is copied from the reference model."""

    name: str
    is_float: bool
    params: dict[str, Any]
    model_params: list[dict[str, Any]]
    elementwise: bool = False
    shape: tuple[int, ...] = ()  # of the output tensor
    vocab: bool = False  # rows permuted into the output vocabulary (MergeJob.vocab)


@dataclass
class MergeJob:
    """One planned merge: the open inputs and a plan per tensor, in the reference's order.

    `inputs` are the method's inputs, in recipe order: a listed model that is the base is left
    out for methods that need a base (its task vector is zero; MergeKit skips it too).
    """

    recipe: Recipe
    ref: ModelFiles
    base: ModelFiles | None
    inputs: list[tuple[ModelEntry, ModelFiles]]
    tensors: list[TensorPlan]
    out_dtype: torch.dtype
    device: torch.device
    seed: int
    vocab: VocabPlan | None = None  # the recipe's tokenizer block, planned

    @property
    def readers(self) -> list[ModelFiles]:
        """Each distinct reader the method reads (inputs, then the base), once."""
        listed = [*(r for _, r in self.inputs), self.base]
        return list({id(r): r for r in listed if r is not None}.values())


def open_models(recipe: Recipe, stack: contextlib.ExitStack) -> dict[Path, ModelFiles]:
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


def _vocab_shape(
    name: str,
    ref: ModelFiles,
    inputs: list[tuple[ModelEntry, ModelFiles]],
    vocab: VocabPlan,
) -> tuple[int, ...]:
    """The output shape of vocabulary tensor `name`: the output vocabulary's rows; the models'
    other dims must match and each model must hold every row its permutation reads."""
    shape = ref.shape(name)
    for label, reader in [(ref.label, ref), *((e.label, r) for e, r in inputs)]:
        other = reader.shape(name)
        if not other or other[1:] != shape[1:]:
            raise MergeError(
                f"shape mismatch for tensor {name}: model {label} has {list(other)}, "
                f"{ref.label} has {list(shape)} (with a tokenizer block only dim 0, the "
                "vocabulary rows, may differ)"
            )
        need = vocab.max_row(reader.path.resolve())
        if need >= other[0]:
            raise MergeError(
                f"tensor {name} of model {label} has {other[0]} rows, but its tokenizer (or a "
                f"tokens: entry) needs row {need}"
            )
    return (vocab.rows, *shape[1:])


def _mismatch(name: str, label: str, other: tuple, ref: ModelFiles, shape: tuple) -> MergeError:
    msg = f"shape mismatch for tensor {name}: model {label} has {list(other)}, {ref.label} has {list(shape)}"
    if is_vocab_tensor(name) and other and shape and other[1:] == shape[1:]:
        msg += (
            f"; the vocabularies differ ({other[0]} vs {shape[0]} rows): add "
            f"`{SOURCE_HINT}` to the recipe to align them"
        )
    return MergeError(msg)


def plan_tensors(
    recipe: Recipe,
    ref: ModelFiles,
    inputs: list[tuple[ModelEntry, ModelFiles]],
    vocab: VocabPlan | None = None,
) -> list[TensorPlan]:
    """A checked plan per tensor of `ref`; raises MergeError on the first bad input. With
    `vocab`, the vocabulary tensors get its rows (`_vocab_shape`)."""
    method = recipe.method
    num_layers = int(ref.config.get("num_hidden_layers") or 1)
    plans = []
    for name in ref.names:
        shape = ref.shape(name)
        is_float = ref.st_dtype(name) in FLOAT_DTYPES
        for entry, reader in inputs:
            if not reader.has(name):
                raise MergeError(f"tensor {name} missing from model {entry.label}")
        aligned = vocab is not None and is_float and is_vocab_tensor(name)
        if aligned:
            shape = _vocab_shape(name, ref, inputs, vocab)
        else:
            for entry, reader in inputs:
                other = reader.shape(name)
                if other != shape:
                    raise _mismatch(name, entry.label, other, ref, shape)
        if not is_float:  # integer buffers etc. are copied from the reference model
            plans.append(TensorPlan(name, False, {}, [], shape=shape))
            continue
        t = gradient_t(name, num_layers)
        params = {p.name: resolve_global(recipe, p, name, t) for p in method.global_params}
        mparams = [
            {p.name: resolve_model(recipe, e, p, name, t) for p in method.model_params}
            for e, _ in inputs
        ]
        method.validate(name, params, mparams, [e.label for e, _ in inputs])
        elementwise = method.elementwise(params, mparams)
        plans.append(TensorPlan(name, True, params, mparams, elementwise, shape, aligned))
    return plans


def check_model_count(method: Any, n: int) -> None:
    """A method with a fixed number of inputs (`exact_models`) gets exactly that many."""
    want = method.exact_models
    if want is None or n == want:
        return
    count = {1: "one", 2: "two"}.get(want, str(want))
    what = f"the base with exactly {count} other model" if method.needs_base else f"exactly {count} model"
    raise MergeError(f"{method.name} merges {what}{'s' if want > 1 else ''}, got {n}")


def plan_merge(
    recipe: Recipe, stack: contextlib.ExitStack, device: torch.device, seed: int
) -> MergeJob:
    """Open the recipe's models (closed with `stack`) and plan every tensor."""
    readers = open_models(recipe, stack)
    ref_path = recipe.base_path if recipe.base_path is not None else recipe.models[0].path
    ref = readers[ref_path.resolve()]
    base = readers[recipe.base_path.resolve()] if recipe.base_path is not None else None
    skip_base = (recipe.method.needs_base or recipe.method.optional_base) and base is not None
    inputs = [
        (e, readers[e.path.resolve()])
        for e in recipe.models
        if not (skip_base and readers[e.path.resolve()] is base)
    ]
    check_model_count(recipe.method, len(inputs))
    vocab = None
    if recipe.tokenizer is not None:
        vocab = plan_vocab(
            recipe.tokenizer,
            [VocabModel(e.label, e.path, readers[e.path.resolve()].config) for e in recipe.models],
            VocabModel(base.label, base.path, base.config) if base is not None else None,
        )
    tensors = plan_tensors(recipe, ref, inputs, vocab)
    out_dtype = recipe.out_dtype or ref.float_dtype() or recipe.dtype
    return MergeJob(recipe, ref, base, inputs, tensors, out_dtype, device, seed, vocab)
