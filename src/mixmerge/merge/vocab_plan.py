"""The vocabulary plan of a merge whose models' vocabularies differ, from metadata only.

Planned as MergeKit's `mergekit/tokenizer/build.py` and `embed.py` do it:

- The output vocabulary (`build_tokenizer`) is the base's tokenizer stripped of tokens whose id is
  >= the base's config `vocab_size` (`get_stripped_tokenizer`, BPE only, as in MergeKit); or
  `union`: the base's tokenizer plus, in order, every other model's regular tokens it lacks, then
  every model's added tokens (`build_union_tokenizer`: tokens at ids >= a model's `vocab_size` are
  left out); or the named model's tokenizer as it is. Tokens named under `tokens:` are added last.
- Each model's permutation maps an output id to the model's own row of that token, or -1 where the
  model lacks it.
- A token some model lacks (`assign_embedding_sources`) gets, in those models: the donor's row when
  exactly one model has it; else the base's row when the base has it; else the mean of the rows of
  the models that have it (summed in recipe order, base last when it is not listed); a token no
  model has gets zeros. A `tokens:` entry overrides this (its row, or with `force: true` even in
  the models that have the token). Rows past the vocabulary (`pad_to_multiple_of`) are each
  model's mean row.
- The method then merges the aligned rows as usual; the output gets that tokenizer
  (tokenizer.json, with tokenizer_config.json, special_tokens_map.json and chat_template.jinja
  from the model it was built from: the base, or the named model) and config.json's vocab_size.

Deviations from MergeKit, all where MergeKit's result is arbitrary or an error:
- Tokenizers are read from tokenizer.json with the `tokenizers` library (what transformers' fast
  tokenizers wrap), so a model with only slow-tokenizer files is refused with one line where
  MergeKit would convert it; a model with no tokenizer files at all is assumed to have the
  tokenizer's base's vocabulary, as MergeKit assumes when it cannot load one.
- MergeKit walks the models as a Python set and each vocabulary as a hash map, so the ids of a
  union's new tokens vary between its runs; here the models go in recipe order (the base first)
  and each one's tokens in id order, one of MergeKit's possible orders. Without a base_model the
  tokenizer's base is the first listed model (MergeKit: an arbitrary one).
- A token at an id >= its model's vocab_size counts as absent from that model (MergeKit: KeyError).
  Stripping the base also drops the BPE merges that make a stripped token (MergeKit keeps them,
  and the tokenizers library then panics).
- With `source: base`, tokens that `tokens:` adds are new to the base too (MergeKit adds them to
  the base's own tokenizer object, so the base seems to hold them at padding rows, or fails with
  a KeyError past its vocab_size).
- Unknown keys of the block are refused (MergeKit ignores them), as is a `tokens:` entry without a
  source (MergeKit fails on it at merge time unless every model has the token).

This module imports neither torch nor transformers (tokenizers only). The tensor side (the
aligned rows) is `mixmerge.merge.execute`'s; the recipe block is `mixmerge.merge.vocab`'s.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixmerge.merge.errors import MergeError
from mixmerge.merge.vocab import (
    SLOW_TOKENIZER_FILES,
    TOKENIZER_JSON,
    TOKENIZER_SIDE_FILES,
    TokenizerSpec,
    TokenSource,
    config_vocab_size,
)

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class VocabModel:
    """One model of the merge, as the vocabulary plan sees it."""

    label: str
    path: Path
    config: Mapping[str, Any]

    @property
    def key(self) -> Path:
        return self.path.resolve()


# How a row is made for a model that lacks a token (or for every model, when forced):
# ("row", model key, row in that model's tensor) | ("avg", (model keys, in order)) | ("zero",)
Default = tuple


@dataclass
class VocabPlan:
    """The output vocabulary and how every model's rows map into it."""

    spec: TokenizerSpec
    tokenizer: Any  # tokenizers.Tokenizer of the output
    source_dir: Path  # where the output's tokenizer_config.json etc. come from
    size: int  # tokens of the output vocabulary
    rows: int  # output rows: size, rounded up to pad_to_multiple_of
    perms: dict[Path, list[int]]  # model key -> per output id, its row of the token, or -1
    group: list[Path]  # the models of each vocabulary tensor, MergeKit's order
    defaults: dict[int, Default]  # output id -> its row in the models lacking it
    forced: frozenset[int]  # output ids whose default replaces every model's own row
    labels: dict[Path, str]

    def max_row(self, key: Path) -> int:
        """The highest row of model `key`'s tensors the alignment reads (-1: none)."""
        rows = [r for r in self.perms[key] if r >= 0]
        rows += [d[2] for d in self.defaults.values() if d[0] == "row" and d[1] == key]
        return max(rows, default=-1)


def _load(model: VocabModel, required: bool) -> Any:
    """The model's tokenizer.json as a tokenizers.Tokenizer; None when it has no tokenizer files
    and `required` is false (MergeKit then assumes the base's vocabulary)."""
    from tokenizers import Tokenizer

    path = model.path / TOKENIZER_JSON
    if not path.is_file():
        slow = [f for f in SLOW_TOKENIZER_FILES if (model.path / f).is_file()]
        if required or slow:
            what = f"only {', '.join(slow)}" if slow else "no tokenizer files"
            raise MergeError(
                f"model {model.label}: {what}; the tokenizer block reads {TOKENIZER_JSON} "
                "(save the tokenizer with transformers' save_pretrained to write one)"
            )
        return None
    try:
        return Tokenizer.from_file(str(path))
    except Exception as err:  # tokenizers raises its own exception types
        raise MergeError(f"model {model.label}: cannot read {path.name} ({err})") from None


def _stripped(model: VocabModel) -> Any:
    """MergeKit's `get_stripped_tokenizer`: the tokenizer without tokens at ids >= vocab_size."""
    from tokenizers import Tokenizer

    tok = _load(model, required=True)
    vocab = tok.get_vocab(with_added_tokens=True)
    limit = config_vocab_size(model.config) or len(vocab)
    unused = {t for t, i in vocab.items() if i >= limit}
    if not unused:
        return tok
    data = json.loads(tok.to_str())
    kind = data["model"]["type"]
    if kind != "BPE":
        raise MergeError(
            f"model {model.label}: its {kind} tokenizer has {len(unused)} tokens at ids >= its "
            f"vocab_size {limit}; only BPE tokenizers can be stripped (as in MergeKit)"
        )
    data["added_tokens"] = [e for e in data["added_tokens"] if e["id"] < limit]
    for t in unused:
        data["model"]["vocab"].pop(t, None)

    prefix = data["model"].get("continuing_subword_prefix") or ""

    def keep(merge: Any) -> bool:
        parts = merge.split(" ") if isinstance(merge, str) else merge
        joined = parts[0] + parts[1].removeprefix(prefix) if len(parts) == 2 else None
        return not any(p in unused for p in parts) and joined not in unused

    data["model"]["merges"] = [m for m in data["model"]["merges"] if keep(m)]
    try:
        return Tokenizer.from_str(json.dumps(data))
    except BaseException as err:  # tokenizers' Rust panics are BaseExceptions
        if isinstance(err, (KeyboardInterrupt, SystemExit, GeneratorExit)):
            raise
        raise MergeError(
            f"model {model.label}: its tokenizer cannot be stripped to its vocab_size {limit} ({err})"
        ) from None


def _added_state(info: Any) -> tuple:
    return (info.content, info.single_word, info.lstrip, info.rstrip, info.normalized, info.special)


def _union(base_tok: Any, toks: Sequence[tuple[VocabModel, Any]]) -> Any:
    """MergeKit's `build_union_tokenizer` (models in the given order, tokens in id order)."""
    from tokenizers import Tokenizer

    out_vocab: dict[str, None] = {}
    added: dict[str, Any] = {}
    for model, tok in toks:
        limit = config_vocab_size(model.config) or tok.get_vocab_size(with_added_tokens=False)
        vocab = tok.get_vocab(with_added_tokens=True)
        for token, idx in sorted(vocab.items(), key=lambda kv: kv[1]):
            if idx >= limit:
                log.warning("token %r of %s is at id %d >= its vocab_size", token, model.label, idx)
                continue
            out_vocab.setdefault(token, None)
        for idx, info in sorted(tok.get_added_tokens_decoder().items()):
            if idx >= limit:
                continue
            if info.content in added:
                if _added_state(added[info.content]) != _added_state(info):
                    log.warning(
                        "token %r added with different settings, using the first", info.content
                    )
                continue
            added[info.content] = info
    res = Tokenizer.from_str(base_tok.to_str())
    base_vocab = base_tok.get_vocab(with_added_tokens=True)
    for token in out_vocab:
        if token not in added and token not in base_vocab:
            res.add_tokens([token])
    for info in added.values():
        res.add_tokens([info])
    return res


def _defaults(
    spec: TokenizerSpec,
    vocab: Mapping[str, int],
    perms: Mapping[Path, list[int]],
    group: Sequence[Path],
    base: Path | None,
    originals: Mapping[Path, Mapping[str, int]],
    keys: Mapping[str, Path],
) -> tuple[dict[int, Default], frozenset[int]]:
    """MergeKit's `assign_embedding_sources` and the default rows of `PermutedVocabulary`."""
    defaults: dict[int, Default] = {}
    forced = set()
    for token, tid in vocab.items():
        setting = spec.tokens.get(token)
        if setting is not None and setting.force:
            forced.add(tid)
        present = [k for k in group if perms[k][tid] >= 0]
        if tid not in forced and len(present) == len(group):
            continue  # every model keeps its own row
        if setting is not None:
            defaults[tid] = _token_default(
                token, tid, setting.source, perms, originals, keys, group
            )
        elif len(present) == 1:
            defaults[tid] = ("row", present[0], perms[present[0]][tid])
        elif not present:
            log.warning("token %r is in no model: its rows are zeros", token)
            defaults[tid] = ("zero",)
        elif base is not None and base in present:
            defaults[tid] = ("row", base, perms[base][tid])
        else:
            defaults[tid] = ("avg", tuple(present))
    return defaults, frozenset(forced)


def _token_default(
    token: str,
    tid: int,
    src: TokenSource,
    perms: Mapping[Path, list[int]],
    originals: Mapping[Path, Mapping[str, int]],
    keys: Mapping[str, Path],
    group: Sequence[Path],
) -> Default:
    where = f"tokenizer.tokens[{token!r}]"
    if src.kind == "zero":
        return ("zero",)
    key = keys.get(src.model or "") or Path(src.model or "").expanduser().resolve()
    if key not in group:
        raise MergeError(f"{where}: model {src.model} is not one of the merged models")
    if src.kind == "model":
        if perms[key][tid] < 0:
            raise MergeError(f"{where}: model {src.model} has no token {token!r}")
        return ("row", key, perms[key][tid])
    if src.token_id is not None:
        if src.token_id < 0:
            raise MergeError(f"{where}: token_id {src.token_id} is negative")
        return ("row", key, src.token_id)
    if src.token not in originals.get(key, {}):
        raise MergeError(f"{where}: model {src.model} has no token {src.token!r}")
    return ("row", key, originals[key][src.token])


def plan_vocab(
    spec: TokenizerSpec, models: Sequence[VocabModel], base: VocabModel | None
) -> VocabPlan:
    """The output vocabulary of a merge of `models` (recipe order) onto `base`, and every model's
    permutation into it; raises MergeError naming the model on a bad tokenizer."""
    listed = list({m.key: m for m in models}.values())
    # MergeKit's tensor groups: the listed models, then the base when it is not listed
    group_models = listed + (
        [base] if base is not None and base.key not in {m.key for m in listed} else []
    )
    tok_base = base if base is not None else listed[0]
    referenced = [tok_base] + [m for m in group_models if m.key != tok_base.key]
    base_tok = _stripped(tok_base)
    toks: dict[Path, Any] = {tok_base.key: base_tok}
    for m in referenced[1:]:
        tok = _load(m, required=False)
        if tok is None:
            log.warning("model %s has no tokenizer: assuming %s's", m.label, tok_base.label)
        else:
            toks[m.key] = tok
    keys = {m.label: m.key for m in referenced}

    if spec.source == "base":
        out, source_dir = base_tok, tok_base.path
    elif spec.source == "union":
        out = _union(base_tok, [(m, toks[m.key]) for m in referenced if m.key in toks])
        source_dir = tok_base.path
    else:
        src_path = Path(spec.source).expanduser()
        known = keys.get(spec.source)
        src = next((m for m in referenced if m.key == known), None) or VocabModel(
            spec.source, src_path, {}
        )
        if not src.path.is_dir():
            raise MergeError(
                f"tokenizer.source: {spec.source} is not base, union or a model directory"
            )
        out, source_dir = _load(src, required=True), src.path
    if out is base_tok and spec.tokens:
        from tokenizers import Tokenizer

        out = Tokenizer.from_str(base_tok.to_str())
    existing = set(out.get_vocab(with_added_tokens=True))
    for token in spec.tokens:
        if token not in existing:
            out.add_tokens([token])
            existing.add(token)
    vocab = out.get_vocab(with_added_tokens=True)
    size = len(vocab)
    if sorted(vocab.values()) != list(range(size)):
        raise MergeError(
            f"the output tokenizer ({spec.describe()}) has token ids that are not 0..{size - 1}"
        )
    rows = size
    pad = spec.pad_to_multiple_of
    if pad and rows % pad:
        rows = (rows // pad + 1) * pad

    originals: dict[Path, dict[str, int]] = {}
    perms: dict[Path, list[int]] = {}
    for m in referenced:
        mtok = toks.get(m.key)
        mvocab = (base_tok if mtok is None else mtok).get_vocab(with_added_tokens=True)
        originals[m.key] = mvocab
        limit = config_vocab_size(m.config) or len(mvocab)
        perm = [-1] * size
        for token, new in vocab.items():
            old = mvocab.get(token)
            if old is None:
                continue
            if old >= limit:
                log.warning(
                    "%s token %r is at id %d >= its vocab_size %d", m.label, token, old, limit
                )
                continue
            perm[new] = old
        perms[m.key] = perm
    group = [m.key for m in group_models]
    defaults, forced = _defaults(
        spec, vocab, perms, group, base.key if base is not None else None, originals, keys
    )
    labels = {m.key: m.label for m in referenced}
    return VocabPlan(spec, out, source_dir, size, rows, perms, group, defaults, forced, labels)


def write_tokenizer(plan: VocabPlan, out: Path) -> None:
    """The output's tokenizer.json, and its source's tokenizer_config.json (added_tokens_decoder
    rewritten from the output tokenizer where it has one), special_tokens_map.json and
    chat_template.jinja."""
    plan.tokenizer.save(str(out / TOKENIZER_JSON))
    for name in TOKENIZER_SIDE_FILES:
        src = plan.source_dir / name
        if not src.is_file():
            continue
        if name == "tokenizer_config.json":
            cfg = json.loads(src.read_text(encoding="utf-8"))
            if "added_tokens_decoder" in cfg:
                cfg["added_tokens_decoder"] = {
                    str(i): {
                        "content": t.content,
                        "lstrip": t.lstrip,
                        "normalized": t.normalized,
                        "rstrip": t.rstrip,
                        "single_word": t.single_word,
                        "special": t.special,
                    }
                    for i, t in sorted(plan.tokenizer.get_added_tokens_decoder().items())
                }
            (out / name).write_text(
                json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )
        else:
            (out / name).write_bytes(src.read_bytes())
