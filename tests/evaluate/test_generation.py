"""Chat generation backend on the tiny model."""

from __future__ import annotations

import builtins
from pathlib import Path

import pytest

from mixmerge.runtime.generation import generate_chat

CONVS = [
    [{"role": "user", "content": "Can you explain gravity?"}],
    [{"role": "user", "content": "Hi"}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the water cycle and why does it matter?"},
        {"role": "assistant", "content": "Water evaporates."},
        {"role": "user", "content": "More?"},
    ],
]


def test_one_string_per_conversation_and_max_new_tokens(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    cfg = {"backend": "hf", "batch_size": 2, "temperature": 0.0}
    short = generate_chat(tiny_model_dir, CONVS, {**cfg, "max_new_tokens": 3}, "cpu")
    long = generate_chat(tiny_model_dir, CONVS, {**cfg, "max_new_tokens": 12}, "cpu")
    assert len(short) == len(long) == len(CONVS)
    assert all(isinstance(s, str) for s in short + long)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    for s, s_long in zip(short, long, strict=True):
        assert len(tok(s, add_special_tokens=False)["input_ids"]) <= 3
        assert s_long.startswith(s)  # greedy: the longer reply extends the shorter one
    assert generate_chat(tiny_model_dir, [], cfg, "cpu") == []


def test_per_item_temperature_keeps_order_and_greedy(tiny_model_dir: Path) -> None:
    cfg = {"backend": "hf", "batch_size": 1, "max_new_tokens": 8, "temperature": 0.0, "seed": 1}
    greedy = generate_chat(tiny_model_dir, CONVS, cfg, "cpu")
    mixed = generate_chat(tiny_model_dir, CONVS, cfg, "cpu", temperatures=[None, 1.0, 0.0])
    assert mixed[0] == greedy[0] and mixed[2] == greedy[2]
    again = generate_chat(tiny_model_dir, CONVS, cfg, "cpu", temperatures=[None, 1.0, 0.0])
    assert again == mixed  # seeded sampling is reproducible
    with pytest.raises(ValueError, match="temperatures"):
        generate_chat(tiny_model_dir, CONVS, cfg, "cpu", temperatures=[0.0])


def test_bad_backend_and_missing_vllm(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="unknown generation backend"):
        generate_chat(tiny_model_dir, CONVS, {"backend": "magic"}, "cpu")
    real_import = builtins.__import__

    def no_vllm(name: str, *args, **kwargs):
        if name == "vllm" or name.startswith("vllm."):
            raise ImportError("No module named 'vllm'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_vllm)
    with pytest.raises(ImportError, match="pip install vllm"):
        generate_chat(tiny_model_dir, CONVS, {"backend": "vllm"}, "cpu")


def test_models_load_once_per_process(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mixmerge.runtime import generation

    generation.release_models()
    a = generation.load_hf_model(tiny_model_dir, "cpu", "auto")
    # a relative spelling of the same directory and the judge's load share the same objects
    monkeypatch.chdir(tiny_model_dir.parent)
    b = generation.load_hf_model(tiny_model_dir.name, "cpu", "auto")
    assert a[0] is b[0] and a[1] is b[1]
    assert generation.load_hf_model(tiny_model_dir, "cpu", "float32")[0] is not a[0]
    # a third distinct load evicts the least recently used one (MAX_LOADED_MODELS = 2)
    monkeypatch.setattr(generation, "MAX_LOADED_MODELS", 2)
    generation.load_hf_model(tiny_model_dir, "cpu", "bfloat16")
    assert len(generation._HF_MODELS) == 2
    assert generation.load_hf_model(tiny_model_dir, "cpu", "auto")[0] is not a[0]
    generation.release_models()
    assert not generation._HF_MODELS


def test_merged_generation_config() -> None:
    from mixmerge.runtime.generation import merged_generation_config

    cfg = merged_generation_config(
        {"generation": {"max_new_tokens": 8, "temperature": 0.0}},
        {"generation": {"max_new_tokens": 4}},
        max_new_tokens=1024,
        top_p=0.9,
    )
    assert cfg == {"max_new_tokens": 4, "temperature": 0.0, "top_p": 0.9}


def test_model_sampling_defaults_read_the_generation_config(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """top_p / top_k "model" = what transformers' generate() would fill in (FastChat's MT-Bench)."""
    import json
    import shutil

    from mixmerge.runtime.generation import resolve_sampling

    cfg = {"temperature": 0.7, "top_p": "model", "top_k": "model", "max_new_tokens": 4}
    with_config = tmp_path / "with"
    shutil.copytree(tiny_model_dir, with_config)
    (with_config / "generation_config.json").write_text(json.dumps({"top_p": 0.9, "top_k": 40}))
    assert resolve_sampling(cfg, with_config) == {**cfg, "top_p": 0.9, "top_k": 40}
    without = tmp_path / "without"
    shutil.copytree(tiny_model_dir, without)
    (without / "generation_config.json").unlink(missing_ok=True)
    assert resolve_sampling(cfg, without) == {**cfg, "top_p": 1.0, "top_k": 50}
    explicit = {"top_p": 0.5, "top_k": 0}
    assert resolve_sampling(explicit, without) is explicit
