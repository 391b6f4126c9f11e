"""Chat generation backends shared by every judged benchmark (OR-Bench, MT-Bench, HaluEval-Wild, ...).

`generate_chat` renders each conversation with the model's own chat template, generates the next
assistant turn and returns one string per conversation, in input order.

gen_cfg keys (config `evaluate.generation`, optionally overridden per benchmark):
    backend         "hf" (transformers generate) | "vllm"            default "hf"
    max_new_tokens  tokens generated per reply                        default 512
    batch_size      conversations per generate() call (hf only)       default 8
    temperature     0 = greedy; > 0 = sampling                        default 0.0
    top_p           nucleus sampling (only when sampling)             default 1.0
    seed            sampling seed                                     default 0
    dtype           "auto" | "float32" | "bfloat16" | "float16"       default "auto"
    vllm: tensor_parallel_size (1), gpu_memory_utilization (0.9), max_model_len (null)
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Conversation = list[dict[str, str]]

BACKENDS = ("hf", "vllm")


def generate_chat(
    model_dir: str | Path,
    conversations: Sequence[Conversation],
    gen_cfg: dict[str, Any],
    device: str,
    temperatures: Sequence[float | None] | None = None,
) -> list[str]:
    """Generate the next assistant turn for each conversation; one string per conversation.

    `temperatures` optionally overrides gen_cfg["temperature"] per conversation (None = use the
    config value); MT-Bench needs this for its per-category temperatures.
    """
    conversations = list(conversations)
    default_t = float(gen_cfg.get("temperature", 0.0))
    if temperatures is None:
        temps = [default_t] * len(conversations)
    else:
        if len(temperatures) != len(conversations):
            raise ValueError(
                f"got {len(temperatures)} temperatures for {len(conversations)} conversations"
            )
        temps = [default_t if t is None else float(t) for t in temperatures]
    if any(t < 0 for t in temps):
        raise ValueError("temperature must be >= 0")
    if not conversations:
        return []
    backend = gen_cfg.get("backend", "hf")
    if backend == "hf":
        return _generate_hf(Path(model_dir), conversations, temps, gen_cfg, device)
    if backend == "vllm":
        return _generate_vllm(Path(model_dir), conversations, temps, gen_cfg)
    raise ValueError(f"unknown generation backend {backend!r} (known: {', '.join(BACKENDS)})")


def resolve_dtype(name: str | None):
    """Config dtype string -> torch dtype (or "auto", letting transformers read the checkpoint)."""
    import torch

    if name in (None, "auto"):
        return "auto"
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
            name
        ]
    except KeyError:
        raise ValueError(
            f"unknown dtype {name!r} (use auto, float32, bfloat16 or float16)"
        ) from None


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    # Union of the tokenizer's EOS and the checkpoint's generation-config EOS list: chat models
    # such as Llama-3 end turns with a token (<|eot_id|>) that is not the tokenizer's EOS.
    ids: list[int] = []
    for value in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        for i in value if isinstance(value, list) else [value]:
            if i is not None and i not in ids:
                ids.append(int(i))
    return ids


def _generate_hf(
    model_dir: Path,
    conversations: list[Conversation],
    temps: list[float],
    gen_cfg: dict[str, Any],
    device: str,
) -> list[str]:
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    batch_size = int(gen_cfg.get("batch_size", 8))
    max_new_tokens = int(gen_cfg.get("max_new_tokens", 512))
    top_p = float(gen_cfg.get("top_p", 1.0))
    seed = int(gen_cfg.get("seed", 0))
    if batch_size < 1:
        raise ValueError("generation batch_size must be >= 1")

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"  # decoder-only: new tokens must follow the prompt directly
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise ValueError(f"{model_dir}: tokenizer has no chat template")
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=resolve_dtype(gen_cfg.get("dtype", "auto"))
    ).to(device)
    model.eval()
    eos = _eos_ids(model, tokenizer)

    # The template already holds BOS etc., so encode without adding special tokens again.
    texts = [
        tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
        for conv in conversations
    ]
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    # Batches never mix temperatures; within one temperature, similar lengths share a batch
    # (less padding). Outputs are written back by index, so input order is kept.
    batches: list[tuple[float, list[int]]] = []
    for t in sorted(set(temps)):
        idx = sorted((i for i, ti in enumerate(temps) if ti == t), key=lambda i: -lengths[i])
        batches += [(t, idx[s : s + batch_size]) for s in range(0, len(idx), batch_size)]

    outputs: list[str] = [""] * len(conversations)
    try:
        for b, (t, idx) in enumerate(tqdm(batches, desc="generate", unit="batch")):
            sampling = t > 0
            config = GenerationConfig(
                max_new_tokens=max_new_tokens,
                do_sample=sampling,
                temperature=t if sampling else None,
                top_p=top_p if sampling else None,
                top_k=0 if sampling else None,  # plain temperature/top-p sampling, no top-k cut
                eos_token_id=eos,
                pad_token_id=tokenizer.pad_token_id,
            )
            if sampling:
                torch.manual_seed(seed + b)  # reproducible per batch regardless of earlier batches
            enc = tokenizer(
                [texts[i] for i in idx],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            ).to(device)
            with torch.inference_mode():
                out = model.generate(**enc, generation_config=config)
            new_tokens = out[:, enc["input_ids"].shape[1] :]
            decoded = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            for i, text in zip(idx, decoded, strict=True):
                outputs[i] = text.strip()
    finally:
        # Free the policy model before a judge model is loaded on the same device.
        del model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return outputs


def _generate_vllm(
    model_dir: Path,
    conversations: list[Conversation],
    temps: list[float],
    gen_cfg: dict[str, Any],
) -> list[str]:
    try:
        from vllm import LLM, SamplingParams
    except ImportError:
        raise ImportError(
            "generation backend 'vllm' needs the vllm package (pip install vllm) on a GPU machine; "
            "or set evaluate.generation.backend: hf"
        ) from None

    max_new_tokens = int(gen_cfg.get("max_new_tokens", 512))
    top_p = float(gen_cfg.get("top_p", 1.0))
    seed = int(gen_cfg.get("seed", 0))
    llm_kwargs: dict[str, Any] = {
        "model": str(model_dir),
        "dtype": gen_cfg.get("dtype", "auto"),
        "seed": seed,
        "tensor_parallel_size": int(gen_cfg.get("tensor_parallel_size", 1)),
        "gpu_memory_utilization": float(gen_cfg.get("gpu_memory_utilization", 0.9)),
    }
    if gen_cfg.get("max_model_len"):
        llm_kwargs["max_model_len"] = int(gen_cfg["max_model_len"])
    llm = LLM(**llm_kwargs)
    # One SamplingParams per conversation carries the per-item temperature (temperature 0 is
    # greedy in vLLM); a per-request seed keeps sampled replies reproducible.
    params = [
        SamplingParams(
            temperature=t,
            top_p=top_p if t > 0 else 1.0,
            max_tokens=max_new_tokens,
            seed=seed + i if t > 0 else None,
        )
        for i, t in enumerate(temps)
    ]
    results = llm.chat(conversations, params, use_tqdm=True)
    return [r.outputs[0].text.strip() for r in results]
