"""The vLLM side of the model runtime: the engine (one per process at a time, in
`generation`'s model cache, never beside a transformers model on the GPU) and chunked chat
generation with per-item temperatures and seeds (as the hf path: `generation.item_seed`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mixmerge.chat import prepare_conversation
from mixmerge.runtime import generation
from mixmerge.runtime.generation import Conversation, free_memory, item_seed
from mixmerge.runtime.generation import _model_key as model_key
from mixmerge.runtime.settings import GenerationSettings


def vllm_engine(model_dir: Path, gen_cfg: dict[str, Any]) -> Any:
    """The process's vLLM engine for this model and these settings (one at a time)."""
    try:
        from vllm import LLM
    except ImportError:
        raise ImportError(
            "generation backend 'vllm' needs the vllm package (pip install vllm) on a GPU machine; "
            "or set evaluate.generation.backend: hf"
        ) from None
    g = GenerationSettings.from_config(gen_cfg)
    llm_kwargs: dict[str, Any] = {
        "model": str(model_dir),
        "dtype": g.dtype,
        "seed": int(g.seed),
        "tensor_parallel_size": int(g.tensor_parallel_size),
        "gpu_memory_utilization": float(g.gpu_memory_utilization),
    }
    if g.max_model_len:
        llm_kwargs["max_model_len"] = int(g.max_model_len)
    key = (model_key(model_dir), *sorted(llm_kwargs.items())[1:])
    engines = generation._VLLM_ENGINES
    if key not in engines:
        # vLLM sizes its cache from the GPU memory it finds free: keep one engine at a time and
        # no transformers model beside it.
        engines.clear()
        generation._HF_MODELS.clear()
        free_memory()
        engines[key] = LLM(**llm_kwargs)
    return engines[key]


VLLM_CHUNK = 256  # conversations per llm.chat call: a killed run keeps every finished chunk


def generate_vllm(
    model_dir: Path,
    conversations: list[Conversation],
    texts: list[str],
    temps: list[float],
    gen_cfg: dict[str, Any],
    on_chunk: Callable[[list[int], list[str]], None] | None = None,
    draws: Sequence[int] | None = None,
) -> list[str]:
    """Replies of `conversations` (their rendered `texts` seed the sampled ones), chunk by
    chunk: `on_chunk(indices, replies)` is called as each finishes (the generation cache)."""
    llm = vllm_engine(model_dir, gen_cfg)
    from vllm import SamplingParams

    g = GenerationSettings.from_config(gen_cfg)
    max_new_tokens = int(g.max_new_tokens)
    top_p = float(g.top_p)
    top_k = int(g.top_k)
    seed = int(g.seed)
    # One SamplingParams per conversation carries the per-item temperature (temperature 0 is
    # greedy in vLLM); a per-item seed from the rendered prompt keeps sampled replies the same
    # whichever chunk or rerun generates them.
    params = [
        SamplingParams(
            temperature=t,
            top_p=top_p if t > 0 else 1.0,
            top_k=top_k if t > 0 and top_k > 0 else -1,  # -1 = no top-k cut
            max_tokens=max_new_tokens,
            seed=item_seed(seed, text, draw) if t > 0 else None,
        )
        for t, text, draw in zip(temps, texts, draws or [0] * len(texts), strict=True)
    ]
    # llm.chat renders the model's chat template itself: fold system turns first, as the hf path.
    tokenizer = llm.get_tokenizer()
    conversations = [prepare_conversation(conv, tokenizer) for conv in conversations]
    outputs: list[str] = []
    for start in range(0, len(conversations), VLLM_CHUNK):
        part = slice(start, start + VLLM_CHUNK)
        results = llm.chat(conversations[part], params[part], use_tqdm=True)
        replies = [r.outputs[0].text.strip() for r in results]
        outputs += replies
        if on_chunk is not None:
            on_chunk(list(range(start, start + len(replies))), replies)
    return outputs
