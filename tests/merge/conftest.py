"""Tiny Llama checkpoints for merge tests: one random base plus perturbed "fine-tunes"."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from merge_helpers import TOKENIZER_FILES, read_state, write_state


@pytest.fixture(scope="session")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        tie_word_embeddings=False,
    )
    out = tmp_path_factory.mktemp("merge-models") / "base"
    LlamaForCausalLM(config).save_pretrained(out)
    for fname, text in TOKENIZER_FILES.items():
        (out / fname).write_text(text)
    return out


@pytest.fixture(scope="session")
def make_finetune(base_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """make_finetune(seed, shards=1): base weights + N(0, 0.02) noise, cached per args."""
    root = tmp_path_factory.mktemp("finetunes")
    cache: dict[tuple[int, int], Path] = {}

    def make(seed: int, shards: int = 1) -> Path:
        if (seed, shards) not in cache:
            gen = torch.Generator().manual_seed(seed)
            state = {
                n: t + 0.02 * torch.randn(t.shape, generator=gen, dtype=t.dtype)
                for n, t in read_state(base_dir).items()
            }
            cache[seed, shards] = write_state(
                root / f"ft{seed}-s{shards}", state, base_dir, shards=shards
            )
        return cache[seed, shards]

    return make
