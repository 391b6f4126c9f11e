"""The tiny offline "instruct" model: a random Llama with a BPE tokenizer trained here."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mixmerge.io import atomic_dir

# A chat template in the Llama-3 spirit: every turn is closed by <|eot|>, which is also EOS,
# so generation stops at the end of the assistant turn.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}<|eot|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL_TOKENS = ["<pad>", "<s>", "<|eot|>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>"]


def train_tokenizer(corpus: Iterable[str], vocab_size: int):
    """Byte-level BPE trained offline on the fixture text; loadable through AutoTokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="<|eot|>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=2048,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_llama_config(tokenizer, hidden_size: int, layers: int, **extra):
    """The tiny Llama shape (GQA, untied embeddings) around a tokenizer's vocabulary and ids."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
        **extra,
    )


def build_tiny_model(
    out_dir: str | Path,
    corpus: Iterable[str],
    seed: int = 0,
    vocab_size: int = 1024,
    hidden_size: int = 64,
    layers: int = 2,
) -> None:
    """Write a random-init LlamaForCausalLM + tokenizer + generation config to `out_dir`."""
    import torch
    from transformers import GenerationConfig, LlamaForCausalLM

    tokenizer = train_tokenizer(corpus, vocab_size)
    config = tiny_llama_config(tokenizer, hidden_size, layers)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
