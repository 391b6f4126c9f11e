"""Prepare a conversation for a tokenizer's chat template (core: imports no mixmerge stage).

Some chat templates have no system role: Mistral-7B-Instruct-v0.2's (the paper's base model)
raises via `raise_exception` unless the roles alternate user/assistant. Every place that renders
a chat template (DPO rows, HF and vLLM generation, HF judges, reward scoring) passes its messages
through `prepare_conversation`, so a leading system message is folded into the first user turn
("{system}\\n\\n{user}") exactly when the template cannot take it, and nowhere else.

- `supports_system_role(tokenizer)`: probes the template once per template text (cached).
- `prepare_conversation(messages, tokenizer)`: the messages to hand to the template.
- `render_chat(tokenizer, messages, add_generation_prompt)`: the rendered text.

For a template that accepts system turns, `prepare_conversation` returns the messages unchanged,
so rendering is byte-identical to calling `apply_chat_template` directly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

Message = dict[str, Any]

# A marker the probe's system turn carries: a template that renders without error but drops the
# system text (it does not print it) does not support the role either.
_PROBE_SYSTEM = "mixmerge-probe-system-7f3a"
_PROBE_USER = "mixmerge-probe-user-7f3a"
_SUPPORT: dict[str, bool] = {}  # template text -> accepts a leading system turn


def _template_key(tokenizer: Any) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        return None
    if isinstance(template, str):
        return template
    return json.dumps(template, sort_keys=True, default=str)  # named templates (a dict)


def _render_probe(tokenizer: Any, messages: list[Message]) -> str | None:
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False)
    except Exception:  # jinja2 TemplateError from raise_exception, or anything the template does
        return None


def supports_system_role(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template renders a leading system turn (and keeps its text).

    Cached per template text, so changing `tokenizer.chat_template` is seen. A tokenizer without
    a template, or one whose template also fails on a plain user turn, counts as supporting it:
    there is nothing to learn from folding, and the caller's own render shows the real error.
    """
    key = _template_key(tokenizer)
    if key is None:
        return True
    if key not in _SUPPORT:
        with_system = _render_probe(
            tokenizer,
            [
                {"role": "system", "content": _PROBE_SYSTEM},
                {"role": "user", "content": _PROBE_USER},
            ],
        )
        if with_system is not None:
            _SUPPORT[key] = _PROBE_SYSTEM in with_system
        else:
            _SUPPORT[key] = _render_probe(tokenizer, [{"role": "user", "content": "u"}]) is None
    return _SUPPORT[key]


def fold_system(messages: Sequence[Message]) -> list[Message]:
    """Fold a leading system message into the first user turn, whatever the template.

    "{system}\\n\\n{user}"; an empty (or blank) system message is dropped; a system message
    not followed by a user turn becomes a user turn. Other messages are left as they are.
    """
    messages = list(messages)
    if not messages or messages[0].get("role") != "system":
        return messages
    system, rest = messages[0], messages[1:]
    content = system.get("content")
    if isinstance(content, str) and not content.strip():
        return rest
    if rest and rest[0].get("role") == "user":
        user = rest[0].get("content")
        if isinstance(content, str) and isinstance(user, str):
            return [{**rest[0], "content": f"{content}\n\n{user}"}, *rest[1:]]
        return messages  # structured (multimodal) content: not ours to merge
    return [{**system, "role": "user"}, *rest]


def prepare_conversation(messages: Sequence[Message], tokenizer: Any) -> list[Message]:
    """The messages to give `tokenizer`'s chat template: a leading system turn is folded into
    the first user turn only when the template rejects system turns; otherwise unchanged."""
    messages = list(messages)
    if not messages or messages[0].get("role") != "system" or supports_system_role(tokenizer):
        return messages
    return fold_system(messages)


def render_chat(
    tokenizer: Any,
    messages: Sequence[Message],
    add_generation_prompt: bool = False,
    **kwargs: Any,
) -> Any:
    """`tokenizer.apply_chat_template` on the prepared messages (text unless `tokenize=True`)."""
    kwargs.setdefault("tokenize", False)
    return tokenizer.apply_chat_template(
        prepare_conversation(messages, tokenizer),
        add_generation_prompt=add_generation_prompt,
        **kwargs,
    )
