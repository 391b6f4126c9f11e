"""Chat generation backends shared by every judged benchmark (OR-Bench, MT-Bench, HaluEval-Wild, ...).

`generate_chat` renders each conversation with the model's own chat template (a leading system turn
folded into the first user turn where the template has no system role: `mixmerge.chat`), generates
the next assistant turn and returns one string per conversation, in input order.
Replies go through the generation cache (`mixmerge.runtime.cache`): the ones it holds are
read, the model generates the rest, and each finished batch is stored at once.

`mixmerge evaluate` runs all benchmarks of one model in one process, so models are loaded once per
process: `load_hf_model` keeps the last `MAX_LOADED_MODELS` (model, tokenizer) pairs keyed by
(path, device, dtype, revision, trust_remote_code). The evaluated model and a local judge model
(e.g. MD-Judge) therefore each load once, and in the tiny profile, where the judge is the
evaluated model itself, they are the very same object. `release_models()` frees them all.

gen_cfg keys (config `evaluate.generation`, optionally overridden per benchmark):
    backend         "hf" (transformers generate) | "vllm"            default "hf"
    max_new_tokens  tokens generated per reply                        default 512
    batch_size      conversations per generate() call (hf only)       default 8
    temperature     0 = greedy; > 0 = sampling                        default 0.0
    top_p           nucleus sampling (only when sampling)             default 1.0
    top_k           top-k cut (only when sampling; 0 = none)          default 0
                    top_p / top_k "model" = the model's own generation_config.json (transformers'
                    defaults top_p 1.0, top_k 50 where it sets none): what FastChat's
                    `model.generate(do_sample=True, temperature=t)` samples with (MT-Bench)
    seed            sampling seed: each prompt samples from a stream of its own, seeded by
                    this and the prompt (`item_seed`), so a reply does not depend on its
                    batch and a rerun reproduces it                   default 0
    dtype           "auto" | "float32" | "bfloat16" | "float16"       default "auto"
    vllm: tensor_parallel_size (1), gpu_memory_utilization (0.9), max_model_len (null). A vLLM
    engine holds its share of GPU memory until freed, so vLLM engines and transformers models of
    this process never share the GPU: building an engine drops the cached transformers models,
    and loading a transformers model on a GPU (e.g. MD-Judge) drops the engine.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mixmerge.chat import render_chat
from mixmerge.runtime.cache import GenerationCache
from mixmerge.runtime.settings import GenerationSettings

log = logging.getLogger(__name__)

Conversation = list[dict[str, str]]

BACKENDS = ("hf", "vllm")
# Evaluated model + judge model; a third distinct load evicts the least recently used one.
MAX_LOADED_MODELS = int(os.environ.get("MIXMERGE_MAX_LOADED_MODELS", "2"))

_HF_MODELS: OrderedDict[tuple[Any, ...], tuple[Any, Any]] = OrderedDict()
_VLLM_ENGINES: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_TOKENIZERS: dict[tuple[Any, ...], Any] = {}
_PINNED: dict[str, tuple[Any, Any]] = {}  # model path -> (model, tokenizer) held in memory


def merged_generation_config(
    eval_cfg: dict[str, Any], bench_cfg: dict[str, Any], **defaults: Any
) -> dict[str, Any]:
    """`defaults` < evaluate.generation < the benchmark's own `generation` block."""
    return {
        **defaults,
        **(eval_cfg.get("generation") or {}),
        **(bench_cfg.get("generation") or {}),
    }


def generate_chat(
    model_dir: str | Path,
    conversations: Sequence[Conversation],
    gen_cfg: dict[str, Any],
    device: str,
    temperatures: Sequence[float | None] | None = None,
    cache: GenerationCache | None = None,
    draws: Sequence[int] | None = None,
) -> list[str]:
    """Generate the next assistant turn for each conversation; one string per conversation.

    `temperatures` optionally overrides gen_cfg["temperature"] per conversation (None = use the
    config value); MT-Bench needs this for its per-category temperatures. `draws` numbers the
    samples of a conversation given several times (ArmoRM's k samples per prompt): each draw is a
    sample of its own; by default every conversation is draw 0. Replies already in
    `cache` are read from it (the model is not even loaded when all are); new ones are stored
    batch by batch as they are generated.
    """
    conversations = list(conversations)
    temps = _temperatures(len(conversations), gen_cfg, temperatures)
    if not conversations:
        return []
    gen_cfg = resolve_sampling(gen_cfg, model_dir)
    g = GenerationSettings.from_config(gen_cfg)
    backend = g.backend
    if backend not in BACKENDS:
        raise ValueError(f"unknown generation backend {backend!r} (known: {', '.join(BACKENDS)})")
    tokenizer = load_tokenizer(model_dir)
    if not tokenizer.chat_template:
        raise ValueError(f"{model_dir}: tokenizer has no chat template")
    # The template already holds BOS etc., so the texts are encoded without special tokens. A
    # system turn is folded into the first user turn where the template has no system role
    # (Mistral-7B-Instruct-v0.2).
    texts = [render_chat(tokenizer, conv, add_generation_prompt=True) for conv in conversations]
    draws = [0] * len(conversations) if draws is None else [int(d) for d in draws]
    if len(draws) != len(conversations):
        raise ValueError(f"got {len(draws)} draws for {len(conversations)} conversations")
    decodings = [
        decoding_settings(gen_cfg, t, device, **({"draw": d} if t > 0 else {}))
        for t, d in zip(temps, draws, strict=True)
    ]

    def run(todo: list[int], save: Callable[[Sequence[int], Sequence[str]], None]) -> None:
        def saved(local: Sequence[int], replies: Sequence[str]) -> None:
            save([todo[j] for j in local], replies)

        if backend == "hf":
            model, tok = load_hf_model(model_dir, device, g.dtype)
            hf_generate(
                model,
                tok,
                [texts[i] for i in todo],
                [temps[i] for i in todo],
                gen_cfg,
                add_special_tokens=False,
                on_batch=saved,
                draws=[draws[i] for i in todo],
            )
        else:
            from mixmerge.runtime.vllm_backend import generate_vllm

            generate_vllm(
                Path(model_dir),
                [conversations[i] for i in todo],
                [texts[i] for i in todo],
                [temps[i] for i in todo],
                gen_cfg,
                on_chunk=saved,
                draws=[draws[i] for i in todo],
            )

    cache = cache if cache is not None else GenerationCache()  # an empty cache is falsy
    return cache.generate(backend, texts, decodings, run)


def decoding_settings(
    gen_cfg: dict[str, Any], temperature: float, device: str, **extra: Any
) -> dict[str, Any]:
    """What, besides the model and the prompt, decides a reply: the generation cache's key.
    Sampling knobs count only when sampling; the seed is the configured one (`item_seed`)."""
    g = GenerationSettings.from_config(gen_cfg)
    settings: dict[str, Any] = {
        "max_new_tokens": int(g.max_new_tokens),
        "temperature": float(temperature),
        "dtype": str(g.dtype),
        "device": str(device).split(":")[0],
    }
    if temperature > 0:
        settings["top_p"] = float(g.top_p)
        settings["top_k"] = int(g.top_k)
        settings["seed"] = int(g.seed)
    return {**settings, **extra}


def item_seed(seed: int, prompt: str, draw: int = 0) -> int:
    """The sampling seed of one prompt (its `draw`-th sample), from the configured seed and the
    prompt alone: a sampled reply is the same whichever batch, rerun or process generates it."""
    digest = hashlib.sha256(f"{int(seed)}\n{int(draw)}\n{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # below 2**63, as torch and vLLM take


MODEL_DEFAULT = "model"  # a top_p / top_k value: read it from the model's generation config


def resolve_sampling(gen_cfg: dict[str, Any], model_dir: str | Path) -> dict[str, Any]:
    """gen_cfg with top_p / top_k given as "model" replaced by the model's generation config.

    transformers' `generate` fills every sampling knob the call leaves unset from the model's
    `generation_config` (library defaults top_p 1.0, top_k 50 where the file sets none), and
    FastChat's MT-Bench answers are sampled that way; this reads the same values.
    """
    wanted = [k for k in ("top_p", "top_k") if gen_cfg.get(k) == MODEL_DEFAULT]
    if not wanted:
        return gen_cfg
    from transformers import GenerationConfig

    from mixmerge.hub import model_source

    path, revision = model_source(model_dir)
    try:
        model_gen = GenerationConfig.from_pretrained(str(path), revision=revision)
    except OSError:  # no generation_config.json: generate() uses the library defaults
        model_gen = GenerationConfig()
    resolved = {**gen_cfg}
    for key in wanted:
        value = getattr(model_gen, key)
        default = {"top_p": 1.0, "top_k": 50}[key]
        resolved[key] = default if value is None else value
    log.info("sampling with the model's top_p=%s top_k=%s", resolved.get("top_p"), resolved.get("top_k"))
    return resolved


def _temperatures(
    n: int, gen_cfg: dict[str, Any], temperatures: Sequence[float | None] | None
) -> list[float]:
    default_t = float(GenerationSettings.from_config(gen_cfg).temperature)
    if temperatures is None:
        temps = [default_t] * n
    else:
        if len(temperatures) != n:
            raise ValueError(f"got {len(temperatures)} temperatures for {n} conversations")
        temps = [default_t if t is None else float(t) for t in temperatures]
    if any(t < 0 for t in temps):
        raise ValueError("temperature must be >= 0")
    return temps


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


def _model_key(path: str | Path) -> str:
    # A local directory is keyed by its absolute path (relative and absolute spellings share one
    # load); anything else is a hub id.
    p = Path(path)
    return str(p.resolve()) if p.exists() else str(path)


def load_tokenizer(
    path: str | Path, *, revision: str | None = None, trust_remote_code: bool = False
) -> Any:
    """The model's tokenizer (pad token = EOS where it has none), loaded once per process: the
    generation cache renders prompts with it without loading the model."""
    key = (_model_key(path), revision, bool(trust_remote_code))
    if key not in _TOKENIZERS:
        from transformers import AutoTokenizer

        from mixmerge.hub import model_source

        source, rev = model_source(path, revision)
        tokenizer = AutoTokenizer.from_pretrained(
            str(source), revision=rev, trust_remote_code=bool(trust_remote_code)
        )
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        _TOKENIZERS[key] = tokenizer
    return _TOKENIZERS[key]


def load_hf_model(
    path: str | Path,
    device: str,
    dtype: str | None = "auto",
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[Any, Any]:
    """(model, tokenizer), loaded once per process per (path, device, dtype, revision, remote);
    a model `pin_model` put in memory for `path` serves it as it is."""
    if _model_key(path) in _PINNED:
        return _PINNED[_model_key(path)]
    key = (_model_key(path), device, dtype or "auto", revision, bool(trust_remote_code))
    if key in _HF_MODELS:
        _HF_MODELS.move_to_end(key)
        return _HF_MODELS[key]
    from transformers import AutoModelForCausalLM

    if _VLLM_ENGINES and str(device).startswith("cuda"):
        # A vLLM engine reserves most of the GPU memory: free it before a transformers model
        # (e.g. a local judge) is put on the GPU; the next vLLM generation rebuilds it.
        log.info("freeing the vLLM engine to load %s on %s", path, device)
        _VLLM_ENGINES.clear()
        free_memory()
    while len(_HF_MODELS) >= max(MAX_LOADED_MODELS, 1):
        old_key, _ = _HF_MODELS.popitem(last=False)
        log.info("unloading %s to make room", old_key[0])
        free_memory()
    from mixmerge.hub import model_source

    tokenizer = load_tokenizer(path, revision=revision, trust_remote_code=trust_remote_code)
    path, revision = model_source(path, revision)  # a hub id reads the mirror's copy, if any
    kwargs: dict[str, Any] = {"revision": revision, "trust_remote_code": bool(trust_remote_code)}
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=resolve_dtype(dtype), **kwargs)
    model.to(device).eval()
    _HF_MODELS[key] = (model, tokenizer)
    log.info("loaded %s on %s", path, device)
    return model, tokenizer


def pin_model(path: str | Path, model: Any, tokenizer: Any) -> None:
    """Serve every load of `path` in this process with `model`, already in memory: the search
    merges each trial into one resident model, whose weights never reach `path`."""
    _PINNED[_model_key(path)] = (model, tokenizer)


def release_models() -> None:
    """Drop every cached model and vLLM engine of this process (frees GPU memory)."""
    _PINNED.clear()
    _HF_MODELS.clear()
    _VLLM_ENGINES.clear()
    _TOKENIZERS.clear()
    free_memory()


def free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    # Union of the tokenizer's EOS and the checkpoint's generation-config EOS list: chat models
    # such as Llama-3 end turns with a token (<|eot_id|>) that is not the tokenizer's EOS.
    ids: list[int] = []
    for value in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        for i in value if isinstance(value, list) else [value]:
            if i is not None and i not in ids:
                ids.append(int(i))
    return ids


def hf_generate(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    temps: Sequence[float],
    gen_cfg: dict[str, Any],
    *,
    add_special_tokens: bool,
    max_length: int | None = None,
    desc: str = "generate",
    on_batch: Callable[[list[int], list[str]], None] | None = None,
    draws: Sequence[int] | None = None,
) -> list[str]:
    """Continue each prompt text; batches never mix temperatures; outputs in input order.

    `max_length` (prompt + new tokens) cuts over-long prompts from the left. `on_batch(indices,
    replies)` is called as each batch finishes (the generation cache stores it). Sampled rows
    draw from a generator of their own, seeded by `item_seed(seed, text, draw)`: a reply does not
    depend on its batch mates, so a rerun that generates only the missing items reproduces them.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import GenerationConfig, LogitsProcessorList

    g = GenerationSettings.from_config(gen_cfg)
    batch_size = int(g.batch_size)
    max_new_tokens = int(g.max_new_tokens)
    top_p = float(g.top_p)
    top_k = int(g.top_k)
    seed = int(g.seed)
    if batch_size < 1:
        raise ValueError("generation batch_size must be >= 1")
    texts = list(texts)
    if not texts:
        return []
    device = next(model.parameters()).device
    eos = _eos_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    encoded = tokenizer(texts, add_special_tokens=add_special_tokens)["input_ids"]
    if max_length:
        keep = max(int(max_length) - max_new_tokens, 1)
        encoded = [ids[-keep:] for ids in encoded]

    # Within one temperature, similar lengths share a batch (less padding). The plan depends only
    # on the items given, so the items left over after a kill form the batches they had.
    batches: list[tuple[float, list[int]]] = []
    for t in sorted(set(temps)):
        idx = sorted((i for i, ti in enumerate(temps) if ti == t), key=lambda i: -len(encoded[i]))
        batches += [(t, idx[s : s + batch_size]) for s in range(0, len(idx), batch_size)]

    outputs: list[str] = [""] * len(texts)
    for t, idx in tqdm(batches, desc=desc, unit="batch"):
        processors = LogitsProcessorList()
        if t > 0:
            seeds = [item_seed(seed, texts[i], draws[i] if draws else 0) for i in idx]
            processors.append(SeededSampling(t, top_k, top_p, seeds, device))
        # Greedy decoding picks the arg-max; sampling is that arg-max over Gumbel-perturbed
        # scores (SeededSampling), hence do_sample=False in both cases.
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=pad,
        )
        # Left padding: decoder-only models must continue right after the prompt.
        width = max(len(encoded[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            n = len(encoded[i])
            ids[row, width - n :] = torch.tensor(encoded[i], dtype=torch.long)
            mask[row, width - n :] = 1
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                generation_config=config,
                logits_processor=processors,
            )
        decoded = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
        replies = [text.strip() for text in decoded]
        for i, text in zip(idx, replies, strict=True):
            outputs[i] = text
        if on_batch is not None:
            on_batch(list(idx), replies)
    return outputs


class SeededSampling:
    """Sampling with one random stream per row, as a logits processor for greedy `generate`.

    Temperature, then top-k, then top-p (transformers' own warpers, in the order its sampling
    applies them), then Gumbel noise from the row's generator: the arg-max of the perturbed
    scores is a draw from the warped distribution (the Gumbel-max trick), the same distribution
    `do_sample=True` draws from, but reproducible per row whatever the batch holds.
    """

    def __init__(
        self, temperature: float, top_k: int, top_p: float, seeds: Sequence[int], device: Any
    ) -> None:
        import torch
        from transformers import (
            LogitsProcessorList,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        self.warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature)])
        if top_k > 0:
            self.warpers.append(TopKLogitsWarper(top_k))
        if top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(top_p))
        self.generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        scores = self.warpers(input_ids, scores.float())
        noise = torch.stack(
            [
                torch.rand(scores.shape[-1], generator=g, device=scores.device)
                for g in self.generators
            ]
        )
        tiny = torch.finfo(noise.dtype).tiny
        return scores - torch.log(-torch.log(noise.clamp(min=tiny)))
