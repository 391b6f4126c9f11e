"""Models whose vocabularies differ: MergeKit 0.1.5's `tokenizer:` block, planned from metadata.

A recipe may carry MergeKit's block (or its older top-level spelling `tokenizer_source: ...`):

    tokenizer:
      source: base | union | <model path>      # MergeKit's default, when the block has none: union
      tokens: {"<tok>": {source: <model> | {kind: model_token, model: <m>, token: <t> | token_id: <i>}
                         | {kind: zero}, force: false}}
      pad_to_multiple_of: 64

The block is parsed and mismatches are reported here; `mixmerge.merge.vocab_plan` plans the
output vocabulary and every model's row permutation, as MergeKit's `mergekit/tokenizer/` does.

Vocabulary-indexed tensors are found by name (`is_vocab_tensor`): the weights MergeKit's
architecture files mark `vocabulary_axis: 0` for decoder LMs (`embed_tokens`, `lm_head`, `wte`,
`word_embeddings`, `embed_in`, `embed_out`, `tok_embeddings`); dim 0 is the token id. Only they are
permuted; every other tensor streams unchanged.

This module imports neither torch nor transformers: `mismatch_line` runs when the workflow is
parsed. The tensor side (the aligned rows) is `mixmerge.merge.execute`'s.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixmerge.merge.errors import MergeError

TOKENIZER_JSON = "tokenizer.json"
# Written beside the output's tokenizer.json, from the directory its tokenizer was built from.
TOKENIZER_SIDE_FILES = ("tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")
# Slow-tokenizer files: not written with a tokenizer block (they would not know added tokens).
SLOW_TOKENIZER_FILES = ("tokenizer.model", "added_tokens.json", "vocab.json", "merges.txt")
# Last two name parts of the tensors whose dim 0 is the token id (MergeKit's vocabulary_axis 0).
VOCAB_TENSORS = frozenset(
    {
        "embed_tokens.weight",
        "lm_head.weight",
        "lm_head.bias",
        "wte.weight",
        "word_embeddings.weight",
        "embed_in.weight",
        "embed_out.weight",
        "tok_embeddings.weight",
    }
)
_BLOCK_KEYS = ("source", "tokens", "pad_to_multiple_of")
SOURCE_HINT = "tokenizer: {source: base | union | <model path>}"


def is_vocab_tensor(name: str) -> bool:
    """Whether dim 0 of tensor `name` is the token id (embeddings, LM head)."""
    return ".".join(name.split(".")[-2:]) in VOCAB_TENSORS


def config_vocab_size(config: Mapping[str, Any]) -> int | None:
    """config.json's vocab_size (a VLM's text_config.vocab_size when there is no top-level one)."""
    for cfg in (config, config.get("text_config")):
        value = cfg.get("vocab_size") if isinstance(cfg, Mapping) else None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def set_config_vocab_size(config: dict[str, Any], size: int) -> None:
    """Set vocab_size where config.json keeps it (MergeKit's `_update_config_vocab`)."""
    text = config.get("text_config")
    if "vocab_size" not in config and isinstance(text, dict) and "vocab_size" in text:
        config["text_config"] = {**text, "vocab_size": size}  # a copy: `config` may be shallow
    else:
        config["vocab_size"] = size


# ------------------------------------------------------------------ the recipe's block


@dataclass(frozen=True)
class TokenSource:
    """Where a `tokens:` entry's row comes from: `model` (that model's row of the token),
    `model_token` (a model's row of another token or id) or `zero`."""

    kind: str
    model: str | None = None
    token: str | None = None
    token_id: int | None = None


@dataclass(frozen=True)
class TokenSetting:
    source: TokenSource
    force: bool = False


@dataclass(frozen=True)
class TokenizerSpec:
    """A recipe's tokenizer block: `source` is base, union or a model path as written."""

    source: str
    tokens: Mapping[str, TokenSetting] = field(default_factory=dict)
    pad_to_multiple_of: int | None = None

    def describe(self) -> str:
        parts = [f"source: {self.source}"]
        if self.tokens:
            parts.append(f"tokens: {len(self.tokens)}")
        if self.pad_to_multiple_of:
            parts.append(f"pad_to_multiple_of: {self.pad_to_multiple_of}")
        return "tokenizer: {" + ", ".join(parts) + "}"


def _source(value: Any, where: str) -> str:
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise MergeError(f"{where}: expected base, union or a model path, got {value!r}")
    return value


def _token_source(value: Any, where: str) -> TokenSource:
    if isinstance(value, (str, Path)):
        return TokenSource("model", model=_source(value, where))
    if not isinstance(value, Mapping):
        raise MergeError(f"{where}: expected a model path or {{kind: model_token | zero, ...}}")
    kind = value.get("kind")
    if kind == "zero":
        if set(value) - {"kind"}:
            raise MergeError(f"{where}: {{kind: zero}} takes no other key")
        return TokenSource("zero")
    if kind != "model_token":
        raise MergeError(f"{where}: unknown kind {kind!r} (model_token or zero)")
    extra = set(value) - {"kind", "model", "token", "token_id"}
    if extra:
        raise MergeError(f"{where}: unknown key {sorted(extra)[0]!r}")
    token, token_id = value.get("token"), value.get("token_id")
    if (token is None) == (token_id is None):
        raise MergeError(f"{where}: give exactly one of token or token_id")
    if token_id is not None and (not isinstance(token_id, int) or isinstance(token_id, bool)):
        raise MergeError(f"{where}: token_id must be an integer, got {token_id!r}")
    if token is not None and not isinstance(token, str):
        raise MergeError(f"{where}: token must be a string, got {token!r}")
    return TokenSource(
        "model_token", _source(value.get("model"), f"{where}.model"), token, token_id
    )


def parse_tokenizer(raw: Mapping[str, Any]) -> TokenizerSpec | None:
    """The recipe's `tokenizer:` block or `tokenizer_source:`, checked; None when it has neither."""
    block, legacy = raw.get("tokenizer"), raw.get("tokenizer_source")
    if block is not None and legacy is not None:
        raise MergeError("recipe has both 'tokenizer' and 'tokenizer_source': give one")
    if legacy is not None:
        return TokenizerSpec(_source(legacy, "tokenizer_source"))
    if block is None:
        return None
    if not isinstance(block, Mapping):
        raise MergeError(
            f"recipe 'tokenizer' must be a mapping like {{source: base}}, got {block!r}"
        )
    unknown = sorted(set(block) - set(_BLOCK_KEYS))
    if unknown:
        raise MergeError(f"tokenizer: unknown key {unknown[0]!r} (known: {', '.join(_BLOCK_KEYS)})")
    source = _source(block.get("source", "union"), "tokenizer.source")
    tokens_raw = block.get("tokens") or {}
    if not isinstance(tokens_raw, Mapping):
        raise MergeError("tokenizer.tokens must be a mapping of token -> {source, force}")
    tokens: dict[str, TokenSetting] = {}
    for token, setting in tokens_raw.items():
        where = f"tokenizer.tokens[{token!r}]"
        if not isinstance(token, str) or not token:
            raise MergeError(f"tokenizer.tokens: a token must be a non-empty string, got {token!r}")
        if not isinstance(setting, Mapping):
            raise MergeError(f"{where}: expected {{source: ..., force: ...}}")
        extra = set(setting) - {"source", "force"}
        if extra:
            raise MergeError(f"{where}: unknown key {sorted(extra)[0]!r}")
        if setting.get("source") is None:
            raise MergeError(f"{where}: needs a source (a model path, model_token or zero)")
        force = setting.get("force", False)
        if not isinstance(force, bool):
            raise MergeError(f"{where}.force must be true or false, got {force!r}")
        tokens[token] = TokenSetting(_token_source(setting["source"], f"{where}.source"), force)
    pad = block.get("pad_to_multiple_of")
    if pad is not None and (not isinstance(pad, int) or isinstance(pad, bool) or pad < 1):
        raise MergeError(f"tokenizer.pad_to_multiple_of must be a positive integer, got {pad!r}")
    return TokenizerSpec(source, tokens, pad)


# ------------------------------------------------------------------ vocabulary facts (no torch)


@dataclass(frozen=True)
class VocabFacts:
    """What a model directory says about its vocabulary without reading a tensor."""

    vocab_size: int | None  # config.json (the embedding rows)
    tokens: dict[str, int] | None  # tokenizer.json: token -> id, added tokens included

    def describe(self) -> str:
        rows = "no vocab_size" if self.vocab_size is None else f"vocab_size {self.vocab_size}"
        toks = "no tokenizer.json" if self.tokens is None else f"{len(self.tokens)} tokens"
        return f"{rows}, {toks}"


_FACTS: dict[tuple[str, int, int], VocabFacts] = {}


def _tokenizer_json_vocab(path: Path) -> dict[str, int]:
    """get_vocab(with_added_tokens=True) of a tokenizer.json, read as JSON."""
    data = json.loads(path.read_text(encoding="utf-8"))
    vocab = (data.get("model") or {}).get("vocab") or {}
    if isinstance(vocab, list):  # Unigram: [[piece, score], ...], the id is the position
        tokens = {entry[0]: i for i, entry in enumerate(vocab)}
    else:
        tokens = dict(vocab)
    for entry in data.get("added_tokens") or []:
        tokens[entry["content"]] = entry["id"]
    return tokens


def vocab_facts(model_dir: Path) -> VocabFacts | None:
    """config.json's vocab_size and tokenizer.json's tokens; None when there is no config.json
    (the model is not built yet). Cached per file state."""
    cfg = Path(model_dir) / "config.json"
    if not cfg.is_file():
        return None
    tok = Path(model_dir) / TOKENIZER_JSON
    stat = tok.stat() if tok.is_file() else None
    key = (str(tok.resolve()), stat.st_mtime_ns if stat else 0, stat.st_size if stat else -1)
    cfg_vs = config_vocab_size(json.loads(cfg.read_text(encoding="utf-8")))
    if key not in _FACTS:
        _FACTS[key] = VocabFacts(None, _tokenizer_json_vocab(tok) if stat else None)
    return VocabFacts(cfg_vs, _FACTS[key].tokens)


def mismatch_line(
    models: Sequence[tuple[str, Path]],
    spec: TokenizerSpec | None,
    where: str = "to the recipe",
) -> str | None:
    """One line naming each model's vocab_size and tokenizer size when they differ, and whether
    `spec` handles it; None when they agree. Models that do not exist yet are skipped."""
    seen: dict[str, tuple[str, VocabFacts]] = {}
    for label, path in models:
        try:
            facts = vocab_facts(Path(path))
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            facts = None  # unreadable: the merge itself names the problem
        if facts is not None:
            seen.setdefault(str(Path(path).resolve()), (label, facts))
    if len(seen) < 2:
        return None
    facts = [f for _, f in seen.values()]
    sizes = {f.vocab_size for f in facts if f.vocab_size is not None}
    known = [f.tokens for f in facts if f.tokens is not None]
    tokens_differ = any(t != known[0] for t in known[1:])
    if len(sizes) < 2 and not tokens_differ:
        return None
    listed = "; ".join(f"{label}: {f.describe()}" for label, f in seen.values())
    if spec is not None:
        tail = f"handled by {spec.describe()}"
    elif len(sizes) > 1:
        tail = f"no tokenizer block, so the merge fails at planning: add {SOURCE_HINT} {where}"
    else:
        tail = (
            "no tokenizer block: the rows match, so the merge would mix rows of different "
            f"tokens: add {SOURCE_HINT} {where}"
        )
    return f"vocabularies differ ({listed}); {tail}"
