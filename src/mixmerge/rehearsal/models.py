"""Replicas of the 4 hub models of the paper configs: tiny random models (hidden 64, 2 layers) of the
SAME architecture class, with the real chat template, special tokens (same order, same relative
ids), config fields, generation_config.json and safetensors shard layout.

The tokenizers are trained here, offline, with `tokenizers` (as mixmerge.tiny.model does): a
byte-level BPE behind Llama-3's own split regex for the Llama-3 family, a sentencepiece-style
(Metaspace + byte fallback) BPE for the Mistral family. The special tokens come where the real
vocabularies have them: Llama-3's 256 specials after the regular vocabulary (<|begin_of_text|> =
first of them, as 128000 is), Mistral's <unk> <s> </s> at ids 0 1 2 followed by the 256 byte
tokens <0x00>..<0xFF>.

Facts and sources (cards and copies of the files; [U] = not confirmed):
- meta-llama/Meta-Llama-3-8B-Instruct: LlamaForCausalLM, bos <|begin_of_text|>, eos <|eot_id|>
  (config eos_token_id 128009), no pad token; generation_config {bos 128000, eos [128001, 128009],
  do_sample, temperature 0.6, top_p 0.9, max_length 4096}; rope_theta 500000, GQA 32/8 heads,
  max_position_embeddings 8192; bfloat16; 4 safetensors shards. Chat template: the one in
  tokenizer_config.json (copies: find_string "'<|end_header_id|>\\n\\n'+ message['content'] | trim",
  e.g. a vLLM log "Using default chat template" and the OpenBioLLM card); the eos list:
  https://openillumi.com/en/en-llama3-eos-token-id-list-huggingfacellm-fix
- mistralai/Mistral-7B-Instruct-v0.2: MistralForCausalLM, <s> / </s> / <unk> = 1 / 2 / 0, no pad;
  rope_theta 1e6, no sliding window, 32k positions (card: https://huggingface.co/mistralai/Mistral-7B-Instruct-v0.2);
  generation_config {bos 1, eos 2}; 3 shards. Chat template: the release template that accepts
  only alternating user/assistant turns (raise_exception otherwise, so a system turn is REJECTED)
  - https://docs.mistral.ai/cookbook/concept-deep-dive-tokenization-templates (Tokenizer V1 Jinja)
  [U] later hub revisions may carry a template that folds a system message; the replica keeps
  the rejecting one (the paper-era tokenizer, the case mixmerge.chat must handle).
- RLHFlow/ArmoRM-Llama3-8B-v0.1: config.json https://huggingface.co/RLHFlow/ArmoRM-Llama3-8B-v0.1/blob/main/config.json
  (architectures [LlamaForRewardModelWithGating], auto_map to modeling_custom.py, num_objectives
  19, gating_temperature 10, gating_hidden_dim 1024, gating_n_hidden 3, pad_token_id 128256 =
  vocab_size - 1: one [PAD] token appended to Llama-3's vocabulary, float32). Parameter names: those
  of mixmerge.mix.armorm_model (model.*, regression_layer.weight, reward_transform_matrix,
  gating.layers.N.{weight,bias}, gating.logit_scale). The replica's gating_hidden_dim is 32 (tiny).
  modeling_custom.py (hub code) is NOT replicated. [U] tokenizer files: assumed Llama-3-Instruct's
  plus [PAD]; shard count (4).
- OpenSafetyLab/MD-Judge-v0.1: MistralForCausalLM (Mistral-7B-v0.1 based: sliding_window 4096,
  rope_theta 1e4), prompted with raw text carrying its own [INST] tags (model card's
  evaluation_template; see mixmerge/judge/prompts/salad_bench_md_judge_v0_1.yaml), BOS added by the
  tokenizer. generation_config {bos 1, eos 2} as in the MD-Judge fine-tunes
  (https://huggingface.co/felfri/MD-Judge-it-1.5/blob/7e8955e6db5b37b1481dff9dbbd9d0a44091105d/generation_config.json).
  [U] no chat template in its tokenizer_config; 3 shards; bfloat16.
Not replicated: Llama-3's original/ folder (consolidated.00.pth, params.json, tokenizer.model)
and Mistral's tokenizer.model (sentencepiece); tokenizer.json carries the tokenizer.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mixmerge.rehearsal.common import RehearsalError, rng_for
from mixmerge.tiny import text

HIDDEN = 64
LAYERS = 2
# The scaled-down shape every replica LM shares (the real models: rms eps 1e-5, silu, untied).
TINY_SHAPE: dict[str, Any] = {
    "hidden_size": HIDDEN,
    "intermediate_size": HIDDEN * 2,
    "num_hidden_layers": LAYERS,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-5,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
}

LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
MISTRAL_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}"
    "{% endfor %}"
)
# Llama-3's pre-tokenizer split (tokenizer.json of meta-llama/Meta-Llama-3-8B-Instruct; tiktoken's
# cl100k-style pattern): keeps "\n\n" one piece whatever follows, so ArmoRM's gating pattern
# tokenizes the same alone and inside a conversation.
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def llama3_special_tokens() -> list[str]:
    """The 256 specials in id order (128000..128255 in the real vocabulary)."""
    named = ["<|begin_of_text|>", "<|end_of_text|>"]
    named += [f"<|reserved_special_token_{i}|>" for i in range(4)]
    named += [
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|reserved_special_token_4|>",
        "<|eot_id|>",
    ]
    return named + [f"<|reserved_special_token_{i}|>" for i in range(5, 251)]


def _corpus(seed: int, n: int = 1500) -> Iterator[str]:
    rng = rng_for(seed, "tokenizer-corpus")
    extras = [
        "system\n\nuser\n\nassistant\n\n",
        "Hello.\n\nHow are you?",
        "Question:",
        "Answer:",
        "Problem:",
        "Solution:",
        "def f(x):\n    return x + 1\n",
        "#### 42",
        "\\boxed{7}",
        "[INST]",
        "[/INST]",
        "safe",
        "unsafe",
        "[RESULT]",
        "O1: Representation & Toxicity",
        "0123456789",
    ]
    for i in range(n):
        yield " ".join(
            [
                text.paragraph(rng, 2),
                text.question(rng),
                text.harmful_request(rng),
                text.refusal(rng),
                extras[i % len(extras)],
                str(rng.randint(0, 9999)),
            ]
        )


def _llama3_tokenizer(seed: int, vocab_size: int = 768, pad: bool = False):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_corpus(seed), trainer=trainer)
    specials = llama3_special_tokens() + (["[PAD]"] if pad else [])
    tok.add_special_tokens(specials)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single="<|begin_of_text|> $A",
                pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                special_tokens=[("<|begin_of_text|>", bos)],
            ),
        ]
    )
    extra = {"pad_token": "[PAD]"} if pad else {}
    # clean_up_tokenization_spaces: true on the hub; transformers 5 ignores it for BPE (and warns)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        clean_up_tokenization_spaces=False,
        model_input_names=["input_ids", "attention_mask"],
        **extra,
    )
    fast.chat_template = LLAMA3_CHAT_TEMPLATE
    return fast


def _mistral_tokenizer(
    seed: int, vocab_size: int = 768, chat_template: str | None = MISTRAL_CHAT_TEMPLATE
):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="▁", prepend_scheme="first", split=True
    )
    tok.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        show_progress=False,
        special_tokens=["<unk>", "<s>", "</s>", *byte_tokens],
    )
    tok.train_from_iterator(_corpus(seed), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B:1", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        clean_up_tokenization_spaces=False,
        model_input_names=["input_ids", "attention_mask"],
    )
    if chat_template:
        fast.chat_template = chat_template
    return fast


def _save_tokenizer(tokenizer: Any, folder: Path, extra: dict[str, Any]) -> None:
    """save_pretrained, then put the chat template INTO tokenizer_config.json (where these repos
    have it; transformers 5 writes chat_template.jinja) and add the repos' own fields."""
    tokenizer.save_pretrained(str(folder))
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    jinja = folder / "chat_template.jinja"
    if jinja.exists():
        config["chat_template"] = jinja.read_text(encoding="utf-8")
        jinja.unlink()
    config.update(extra)
    config_path.write_text(
        json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def _save_model(model: Any, folder: Path, shards: int, dtype: Any) -> None:
    """safetensors in `shards` files model-0000k-of-0000n.safetensors + index, as the real repos."""
    import shutil
    import tempfile

    model.to(dtype)
    total = sum(p.numel() * p.element_size() for p in model.state_dict().values())
    # transformers packs whole tensors into shards: find the size limit that gives `shards` files
    for step in range(40):
        limit = max(1, int(total / shards * (1 + 0.025 * step)) + 1)
        with tempfile.TemporaryDirectory(dir=folder.parent) as trial:
            model.save_pretrained(trial, max_shard_size=limit)
            if len(list(Path(trial).glob("model-*.safetensors"))) <= shards:
                for item in Path(trial).iterdir():
                    shutil.move(str(item), folder / item.name)
                return
    raise RehearsalError(f"{folder}: cannot split the weights into {shards} safetensors shards")


def _patch_config(folder: Path, **fields: Any) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.update(fields)
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _seed_torch(seed: int, name: str) -> None:
    import torch

    torch.manual_seed(random.Random(f"{seed}:{name}").getrandbits(63))


def _write_generation_config(folder: Path, fields: dict[str, Any]) -> None:
    (folder / "generation_config.json").write_text(
        json.dumps(fields, indent=2) + "\n", encoding="utf-8"
    )


def _llama_config(tokenizer: Any, **extra: Any):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        **TINY_SHAPE,
        max_position_embeddings=8192,
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
        attention_bias=False,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|begin_of_text|>"),
        **extra,
    )


def build_llama3_instruct(folder: Path, seed: int) -> None:
    """meta-llama/Meta-Llama-3-8B-Instruct (see the module docstring for the sources)."""
    import torch
    from transformers import LlamaForCausalLM

    tok = _llama3_tokenizer(seed)
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    eos_text = tok.convert_tokens_to_ids("<|end_of_text|>")
    config = _llama_config(tok, eos_token_id=eot)
    _seed_torch(seed, "llama3")
    model = LlamaForCausalLM(config)
    _save_model(model, folder, shards=4, dtype=torch.bfloat16)
    _write_generation_config(
        folder,
        {
            "bos_token_id": config.bos_token_id,
            "do_sample": True,
            "eos_token_id": [eos_text, eot],
            "max_length": 4096,
            "temperature": 0.6,
            "top_p": 0.9,
        },
    )
    _save_tokenizer(tok, folder, {"model_max_length": 1000000000000000019884624838656})


def _mistral_config(tokenizer: Any, rope_theta: float, sliding_window: int | None):
    from transformers import MistralConfig

    return MistralConfig(
        vocab_size=len(tokenizer),
        **TINY_SHAPE,
        max_position_embeddings=32768,
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
        sliding_window=sliding_window,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


def _build_mistral(
    folder: Path,
    seed: int,
    name: str,
    rope_theta: float,
    sliding_window: int | None,
    chat_template: str | None,
    verdict: str | None = None,
) -> None:
    import torch
    from transformers import MistralForCausalLM

    tok = _mistral_tokenizer(seed, chat_template=chat_template)
    config = _mistral_config(tok, rope_theta, sliding_window)
    _seed_torch(seed, name)
    model = MistralForCausalLM(config)
    if verdict is not None:
        _always_say(model, tok, verdict)
    _save_model(model, folder, shards=3, dtype=torch.bfloat16)
    _write_generation_config(
        folder,
        {
            "_from_model_config": True,
            "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id,
        },
    )
    _save_tokenizer(
        tok,
        folder,
        {
            "add_bos_token": True,
            "add_eos_token": False,
            "legacy": True,
            "spaces_between_special_tokens": False,
            "use_default_system_prompt": False,
            "model_max_length": 1000000000000000019884624838656,
        },
    )


def build_mistral_instruct(folder: Path, seed: int) -> None:
    """mistralai/Mistral-7B-Instruct-v0.2 (see the module docstring)."""
    _build_mistral(folder, seed, "mistral", 1e6, None, MISTRAL_CHAT_TEMPLATE)


def _always_say(model: Any, tokenizer: Any, word: str) -> None:
    """Make a random causal LM answer every prompt with a token that reads `word`.

    A random judge replies with noise, which the judge's parser rightly counts as unparsed (and a
    score over no parsed verdict fails the job). The MD-Judge replica must instead answer in
    MD-Judge's format so that the rehearsal runs the prompt, the generation, the parser and the
    scoring of the real judge path: every position gets the same hidden state (one embedding
    row for all tokens, attention and MLP outputs zeroed), and the output row of a vocabulary
    token containing `word` is aligned with it, so greedy decoding repeats that token."""
    import torch

    vocab = tokenizer.get_vocab()
    token = min(
        (t for t in vocab if word in t.lower() and f"un{word}" not in t.lower()),
        key=len,
        default=None,
    )
    if token is None:
        raise ValueError(f"the replica tokenizer has no token containing {word!r}")
    with torch.no_grad():
        embed = model.get_input_embeddings().weight
        embed.copy_(embed[:1].expand_as(embed))
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        hidden = model.model.norm(embed[:1]).flatten()
        head = model.get_output_embeddings().weight
        head.mul_(0.01)
        head[vocab[token]] = hidden / hidden.norm() * 100.0


def build_md_judge(folder: Path, seed: int) -> None:
    """OpenSafetyLab/MD-Judge-v0.1 (see the module docstring). Its weights are random but shaped
    to answer every prompt with "safe" (`_always_say`), in the judge's own reply format."""
    _build_mistral(folder, seed, "md_judge", 1e4, 4096, None, verdict="safe")


ARMORM_CONFIG = {  # the real config.json's ArmoRM fields (gating_hidden_dim scaled down)
    "architectures": ["LlamaForRewardModelWithGating"],
    "auto_map": {
        "AutoModelForSequenceClassification": "modeling_custom.LlamaForRewardModelWithGating"
    },
    "num_objectives": 19,
    "gating_temperature": 10,
    "gating_hidden_dim": 32,
    "gating_n_hidden": 3,
    "use_cache": False,
}


def build_armorm(folder: Path, seed: int) -> None:
    """RLHFlow/ArmoRM-Llama3-8B-v0.1 (see the module docstring); loads through
    mixmerge.mix.armorm_model.ArmoRMForScoring.from_pretrained with no missing keys."""
    import torch

    from mixmerge.mix.armorm_model import ArmoRMForScoring

    tok = _llama3_tokenizer(seed, pad=True)
    fields = {k: v for k, v in ARMORM_CONFIG.items() if k not in ("architectures", "auto_map")}
    config = _llama_config(
        tok,
        eos_token_id=tok.convert_tokens_to_ids("<|end_of_text|>"),
        pad_token_id=tok.pad_token_id,
        id2label={0: "LABEL_0"},
        label2id={"LABEL_0": 0},
        **fields,
    )
    _seed_torch(seed, "armorm")
    model = ArmoRMForScoring(config)
    _save_model(model, folder, shards=4, dtype=torch.float32)
    _patch_config(
        folder, architectures=ARMORM_CONFIG["architectures"], auto_map=ARMORM_CONFIG["auto_map"]
    )
    _save_tokenizer(tok, folder, {"model_max_length": 1000000000000000019884624838656})


BUILDERS = {
    "meta-llama/Meta-Llama-3-8B-Instruct": build_llama3_instruct,
    "mistralai/Mistral-7B-Instruct-v0.2": build_mistral_instruct,
    "RLHFlow/ArmoRM-Llama3-8B-v0.1": build_armorm,
    "OpenSafetyLab/MD-Judge-v0.1": build_md_judge,
}
