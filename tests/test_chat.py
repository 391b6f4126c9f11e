"""One place prepares conversations for chat templates: a system turn is folded into the first
user turn exactly where the template has no system role (Mistral-7B-Instruct-v0.2), and every
chat-template call of the package (generation hf + vLLM, HF judge, reward model, DPO rows) uses it."""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

import pytest

from mixmerge.chat import fold_system, prepare_conversation, render_chat, supports_system_role

# Mistral-7B-Instruct-v0.2's chat template as released (the paper's base model), verbatim from
# its tokenizer_config.json, here as copied at a pinned commit by
# https://huggingface.co/PrunaAI/Mistral-7B-Instruct-v0.2-bnb-4bit/blob/ff58100143099bfea31d7af68cb518b32a7f217c/tokenizer_config.json
# (the same text the hub discussion mistralai/Mistral-7B-Instruct-v0.2#52 reports raising
# "Conversation roles must alternate" on a system turn).
MISTRAL_V02_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant "
    "roles are supported!') }}{% endif %}{% endfor %}"
)
# Meta-Llama-3-8B-Instruct's chat template (the paper's other base model; as vLLM logs it as the
# model's default template, and as many public copies of its tokenizer_config.json carry it).
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | "
    "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
    "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

SYSTEM_CONV = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is the water cycle?"},
    {"role": "assistant", "content": "Water evaporates."},
    {"role": "user", "content": "More?"},
]
FOLDED = [
    {"role": "user", "content": "Be brief.\n\nWhat is the water cycle?"},
    {"role": "assistant", "content": "Water evaporates."},
    {"role": "user", "content": "More?"},
]


@pytest.fixture(scope="module")
def mistral_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with Mistral-7B-Instruct-v0.2's chat template."""
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("mistral") / "model"
    shutil.copytree(tiny_model_dir, out)
    tok = AutoTokenizer.from_pretrained(out)
    tok.chat_template = MISTRAL_V02_TEMPLATE
    tok.save_pretrained(out)
    return out


def _tokenizer(path: Path, template: str | None = None):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    if template is not None:
        tok.chat_template = template
    return tok


def test_mistral_template_rejects_system_and_is_folded(mistral_model_dir: Path) -> None:
    from jinja2.exceptions import TemplateError

    tok = _tokenizer(mistral_model_dir)
    assert tok.chat_template == MISTRAL_V02_TEMPLATE  # saved and reloaded with the model
    with pytest.raises(TemplateError, match="Conversation roles must alternate"):
        tok.apply_chat_template(SYSTEM_CONV, tokenize=False)
    assert not supports_system_role(tok)
    assert prepare_conversation(SYSTEM_CONV, tok) == FOLDED
    assert render_chat(tok, SYSTEM_CONV, add_generation_prompt=True) == (
        "<s>[INST] Be brief.\n\nWhat is the water cycle? [/INST]Water evaporates.<|eot|>"
        "[INST] More? [/INST]"
    )
    # an empty system turn is dropped rather than leaving a "\n\n" prefix
    empty = [{"role": "system", "content": " "}, {"role": "user", "content": "Hi"}]
    assert prepare_conversation(empty, tok) == [{"role": "user", "content": "Hi"}]
    # nothing to fold: unchanged
    assert prepare_conversation(FOLDED, tok) == FOLDED
    assert SYSTEM_CONV[0]["role"] == "system"  # the input is not modified


@pytest.mark.parametrize("template", [LLAMA3_TEMPLATE, None], ids=["llama3", "tiny"])
def test_templates_with_system_role_are_untouched(tiny_model_dir: Path, template) -> None:
    tok = _tokenizer(tiny_model_dir, template)
    assert supports_system_role(tok)
    assert prepare_conversation(SYSTEM_CONV, tok) == SYSTEM_CONV
    for gen in (False, True):
        direct = tok.apply_chat_template(SYSTEM_CONV, tokenize=False, add_generation_prompt=gen)
        assert render_chat(tok, SYSTEM_CONV, add_generation_prompt=gen) == direct  # byte-identical
    if template == LLAMA3_TEMPLATE:
        assert "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>" in render_chat(
            tok, SYSTEM_CONV
        )


def test_probe_follows_template_changes_and_silent_drops(tiny_model_dir: Path) -> None:
    tok = _tokenizer(tiny_model_dir)
    assert supports_system_role(tok)
    tok.chat_template = MISTRAL_V02_TEMPLATE
    assert not supports_system_role(tok)  # cached per template text, not per tokenizer object
    # a template that renders without error but never prints the system text
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] != 'system' %}{{ m['content'] }}\n"
        "{% endif %}{% endfor %}"
    )
    assert not supports_system_role(tok)
    assert prepare_conversation(SYSTEM_CONV, tok) == FOLDED
    tok.chat_template = None
    assert supports_system_role(tok)  # no template: nothing to decide, the render will say so


def test_fold_system_edge_cases() -> None:
    assert fold_system([]) == []
    assert fold_system([{"role": "system", "content": "S"}]) == [{"role": "user", "content": "S"}]
    assert fold_system(
        [{"role": "system", "content": "S"}, {"role": "assistant", "content": "A"}]
    ) == [{"role": "user", "content": "S"}, {"role": "assistant", "content": "A"}]
    later = [{"role": "user", "content": "U"}, {"role": "system", "content": "S"}]
    assert fold_system(later) == later  # only a leading system turn is folded


def test_generate_chat_with_system_turn_on_mistral_template(mistral_model_dir: Path) -> None:
    from mixmerge.runtime.generation import generate_chat

    cfg = {"backend": "hf", "batch_size": 2, "max_new_tokens": 6, "temperature": 0.0}
    convs = [SYSTEM_CONV, [{"role": "user", "content": "Hi"}]]
    replies = generate_chat(mistral_model_dir, convs, cfg, "cpu")
    assert len(replies) == 2 and all(isinstance(r, str) for r in replies)
    # greedy: the same replies as for the conversation folded by hand
    assert generate_chat(mistral_model_dir, [FOLDED, convs[1]], cfg, "cpu") == replies


def test_vllm_path_gets_folded_conversations(
    mistral_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vLLM's `LLM.chat` renders the template itself: it must receive folded messages."""
    from mixmerge.runtime import generation

    seen: dict[str, list] = {}
    tok = _tokenizer(mistral_model_dir)

    class FakeLLM:  # the documented surface used: LLM(**kw), get_tokenizer(), chat(...)
        def __init__(self, **kwargs) -> None:
            self.kwargs = kwargs

        def get_tokenizer(self):
            return tok

        def chat(self, messages, sampling_params, use_tqdm=True):
            seen["messages"] = messages
            for conv in messages:
                tok.apply_chat_template(conv, tokenize=False)  # renders: no system turn left
            out = types.SimpleNamespace(text=" ok ")
            return [types.SimpleNamespace(outputs=[out]) for _ in messages]

    fake = types.ModuleType("vllm")
    fake.LLM = FakeLLM
    fake.SamplingParams = lambda **kw: kw
    monkeypatch.setitem(sys.modules, "vllm", fake)
    try:
        replies = generation.generate_chat(
            mistral_model_dir, [SYSTEM_CONV], {"backend": "vllm"}, "cuda"
        )
    finally:
        generation.release_models()
    assert replies == ["ok"]
    assert seen["messages"] == [FOLDED]


def test_hf_judge_and_reward_model_render_folded(mistral_model_dir: Path) -> None:
    from mixmerge.judge import JudgePrompt
    from mixmerge.judge.backends.hf import HFJudge
    from mixmerge.mix.reward import HFRewardModel

    judge = HFJudge(mistral_model_dir, mode="likelihood", device="cpu")
    assert judge._render(JudgePrompt(user="U", system="S")) == "<s>[INST] S\n\nU [/INST]"
    assert judge._render(JudgePrompt(user="U")) == "<s>[INST] U [/INST]"

    rm = HFRewardModel.__new__(HFRewardModel)  # only the rendering, no classification head
    rm.tokenizer, rm.max_length = _tokenizer(mistral_model_dir), 4096
    ids = rm._render(SYSTEM_CONV[:2], "R")
    assert (
        rm.tokenizer.decode(ids)
        == "<s>[INST] Be brief.\n\nWhat is the water cycle? [/INST]R<|eot|>"
    )


def test_dpo_rows_fold_only_for_templates_without_system(
    tiny_model_dir: Path, mistral_model_dir: Path
) -> None:
    from mixmerge.train.dpo import to_trl_rows

    pair = {"prompt": SYSTEM_CONV[:2], "chosen": "a", "rejected": "b"}
    [row] = to_trl_rows([pair], _tokenizer(mistral_model_dir))
    assert row["prompt"] == [FOLDED[0]]
    assert row["chosen"] == [{"role": "assistant", "content": "a"}]
    [row] = to_trl_rows([pair], _tokenizer(tiny_model_dir))
    assert row["prompt"] == SYSTEM_CONV[:2]
