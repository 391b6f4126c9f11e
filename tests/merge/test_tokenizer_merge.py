"""Different vocabularies: MergeKit 0.1.5's tokenizer block on tiny checkpoints, rows by hand.

Each model has a WordLevel tokenizer.json (tokens t0.. as its regular vocabulary, then added
tokens), `model.embed_tokens.weight` and `lm_head.weight` with one row per id (row i of model m
holds small integers, so every expected row is exact in float32) and a vocabulary-free
`model.norm.weight`. The expected rows are written out from MergeKit's rules: the output
vocabulary, each model's permutation, and for a token a model lacks the donor's row (one model
has it), the base's row (the base has it) or the mean of the models that have it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from merge_helpers import read_state, write_model
from tokenizers import AddedToken, Tokenizer, models

from mixmerge.merge import MergeError, run_merge
from mixmerge.merge.from_config import recipe_vocab_warning, vocab_warnings
from mixmerge.merge.recipe import load_recipe
from mixmerge.merge.vocab import mismatch_line, parse_tokenizer

H = 2
EMB, HEAD, NORM = "model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"


def make_model(
    root: Path,
    name: str,
    regular: list[str],
    added: tuple[str, ...] = (),
    rows: int | None = None,
    scale: float = 1.0,
) -> Path:
    """A model whose row i is [scale * (i + 1), scale * -(i + 1)] (+ 100 in lm_head), with
    `rows` rows (default: one per token) and config vocab_size = rows."""
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(regular)}, unk_token=regular[0]))
    tok.add_tokens([AddedToken(t, special=True) for t in added])
    n = rows if rows is not None else tok.get_vocab_size(with_added_tokens=True)
    ids = torch.arange(1, n + 1, dtype=torch.float32)
    emb = scale * torch.stack([ids, -ids], dim=1)
    state = {EMB: emb, HEAD: emb + 100, NORM: torch.full((H,), scale)}
    out = write_model(root / name, state)
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "vocab_size": n}))
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 8, "from": name}))
    return out


def rows_of(model: Path, ids: list[int]) -> torch.Tensor:
    """The embedding rows of `model` (its own ids; a float row stands for a default row)."""
    return read_state(model)[EMB][ids]


def out_vocab(out: Path) -> dict[str, int]:
    return Tokenizer.from_file(str(out / "tokenizer.json")).get_vocab(with_added_tokens=True)


T6 = [f"t{i}" for i in range(6)]


def test_padded_rows_without_a_block_fail_at_planning(tmp_path: Path) -> None:
    a = make_model(tmp_path, "a", T6)
    b = make_model(tmp_path, "b", T6, rows=8)  # the same tokenizer, rows padded 6 -> 8
    recipe = {"merge_method": "linear", "models": [{"model": str(a)}, {"model": str(b)}]}
    with pytest.raises(MergeError) as info:
        run_merge(recipe, tmp_path / "out", progress=False)
    assert str(info.value) == (
        f"shape mismatch for tensor lm_head.weight: model {b} has [8, 2], {a} has [6, 2]; the "
        "vocabularies differ (8 vs 6 rows): add `tokenizer: {source: base | union | <model "
        "path>}` to the recipe to align them"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("source", ["base", "union"])
def test_padded_rows_with_source_base_or_union(tmp_path: Path, source: str) -> None:
    a = make_model(tmp_path, "a", T6)
    b = make_model(tmp_path, "b", T6, rows=8, scale=3.0)
    recipe = {
        "merge_method": "linear",
        "models": [
            {"model": str(a), "parameters": {"weight": 1.0}},
            {"model": str(b), "parameters": {"weight": 3.0}},
        ],
        "tokenizer": {"source": source},
    }
    run_merge(recipe, tmp_path / "out", progress=False)
    got = read_state(tmp_path / "out")
    # same tokens, same ids: b's padding rows 6, 7 are dropped (6 output rows, as in MergeKit)
    want = (rows_of(a, list(range(6))) + 3 * rows_of(b, list(range(6)))) / 4
    assert torch.equal(got[EMB], want)
    assert torch.equal(got[HEAD], want + 100)
    assert torch.equal(got[NORM], torch.full((H,), 2.5))  # (1 + 3 * 3) / 4
    assert json.loads((tmp_path / "out" / "config.json").read_text())["vocab_size"] == 6
    assert out_vocab(tmp_path / "out") == {t: i for i, t in enumerate(T6)}
    assert json.loads((tmp_path / "out" / "tokenizer_config.json").read_text())["from"] == "a"


@pytest.fixture()
def three(tmp_path: Path) -> tuple[Path, Path, Path]:
    """base: t0..t3 + <z>; m1: t0..t3 + <z>, <x>, <y>; m2: t0..t2, e + <y> (e at m2's id 3)."""
    base = make_model(tmp_path, "base", T6[:4], ("<z>",))
    m1 = make_model(tmp_path, "m1", T6[:4], ("<z>", "<x>", "<y>"), scale=2.0)
    m2 = make_model(tmp_path, "m2", [*T6[:3], "e"], ("<y>",), scale=4.0)
    return base, m1, m2


def _ta(base: Path, m1: Path, m2: Path, tokenizer: dict) -> dict:
    return {
        "merge_method": "task_arithmetic",
        "base_model": str(base),
        "models": [
            {"model": str(m1), "parameters": {"weight": 1.0}},
            {"model": str(m2), "parameters": {"weight": 0.5}},
        ],
        "tokenizer": tokenizer,
    }


@pytest.mark.parametrize("path", ["streamed", "chunks straddle rows", "whole tensors"])
def test_union_order_donor_base_and_mean_rows(
    tmp_path: Path, three, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mixmerge.merge import execute
    from mixmerge.merge.methods.task_arithmetic import TaskArithmeticMerge

    if path == "chunks straddle rows":
        monkeypatch.setattr(execute, "CHUNK_CPU", 3)
    if path == "whole tensors":
        monkeypatch.setattr(TaskArithmeticMerge, "elementwise", lambda self, p, m: False)
    base, m1, m2 = three
    run_merge(_ta(base, m1, m2, {"source": "union"}), tmp_path / "out", progress=False)
    # MergeKit's union: the base's tokens at their ids, then the other models' regular tokens it
    # lacks (e), then every added token it lacks (<x>, <y>), models in order.
    vocab = {"t0": 0, "t1": 1, "t2": 2, "t3": 3, "<z>": 4, "e": 5, "<x>": 6, "<y>": 7}
    assert out_vocab(tmp_path / "out") == vocab
    B, M1, M2 = (read_state(p)[EMB] for p in (base, m1, m2))
    y_mean = (M1[6] + M2[4]) / 2  # <y>: in m1 and m2, not in the base -> their mean
    # t3, <z>: the base has them -> m2 gets the base's rows; e only in m2, <x> only in m1: donors
    base_al = torch.stack([B[0], B[1], B[2], B[3], B[4], M2[3], M1[5], y_mean])
    m1_al = torch.stack([M1[0], M1[1], M1[2], M1[3], M1[4], M2[3], M1[5], M1[6]])
    m2_al = torch.stack([M2[0], M2[1], M2[2], B[3], B[4], M2[3], M1[5], M2[4]])
    want = base_al + 1.0 * (m1_al - base_al) + 0.5 * (m2_al - base_al)
    got = read_state(tmp_path / "out")
    assert torch.equal(got[EMB], want)
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["vocab_size"] == 8
    assert (
        "vocabulary: `tokenizer: {source: union}`" in (tmp_path / "out" / "README.md").read_text()
    )


def test_source_model_padding_and_token_overrides(tmp_path: Path, three) -> None:
    base, m1, m2 = three
    tokenizer = {
        "source": str(m2),  # t0 t1 t2 e <y>
        "pad_to_multiple_of": 4,
        "tokens": {
            "t0": {"source": str(m2), "force": True},  # every model takes m2's row of t0
            "e": {"source": {"kind": "zero"}},  # not the donor's row: zeros where it is missing
            "<new>": {"source": {"kind": "model_token", "model": str(m1), "token": "<x>"}},
        },
    }
    run_merge(_ta(base, m1, m2, tokenizer), tmp_path / "out", progress=False)
    assert out_vocab(tmp_path / "out") == {"t0": 0, "t1": 1, "t2": 2, "e": 3, "<y>": 4, "<new>": 5}
    B, M1, M2 = (read_state(p)[EMB] for p in (base, m1, m2))
    zero = torch.zeros(H)
    rows = [  # t0 forced, t1, t2, e (zeros unless own), <y> (mean of m1, m2), <new> (m1's <x>)
        torch.stack([M2[0], B[1], B[2], zero, (M1[6] + M2[4]) / 2, M1[5]]),
        torch.stack([M2[0], M1[1], M1[2], zero, M1[6], M1[5]]),
        torch.stack([M2[0], M2[1], M2[2], M2[3], M2[4], M1[5]]),
    ]
    # 6 tokens padded to 8 rows: each model's rows 6, 7 are its mean aligned row (MergeKit)
    base_al, m1_al, m2_al = (torch.cat([r, r.mean(0).expand(2, H)]) for r in rows)
    want = base_al + 1.0 * (m1_al - base_al) + 0.5 * (m2_al - base_al)
    assert torch.equal(read_state(tmp_path / "out")[EMB], want)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["vocab_size"] == 8
    assert json.loads((tmp_path / "out" / "tokenizer_config.json").read_text())["from"] == "m2"


def test_padding_rows_are_each_model_s_mean_row(tmp_path: Path) -> None:
    a = make_model(tmp_path, "a", T6[:3])
    b = make_model(tmp_path, "b", T6[:3], rows=5, scale=3.0)
    recipe = {
        "merge_method": "linear",
        "models": [
            {"model": str(a), "parameters": {"weight": 1.0}},
            {"model": str(b), "parameters": {"weight": 1.0}},
        ],
        "tokenizer_source": "base",  # MergeKit's older spelling
    }
    run_merge(recipe, tmp_path / "out2", progress=False)
    assert read_state(tmp_path / "out2")[EMB].shape == (3, H)
    recipe["tokenizer_source"] = None
    recipe["tokenizer"] = {"source": "base", "pad_to_multiple_of": 4}
    run_merge(recipe, tmp_path / "out", progress=False)
    got = read_state(tmp_path / "out")[EMB]
    A, Bm = rows_of(a, [0, 1, 2]), rows_of(b, [0, 1, 2])
    want = torch.cat([(A + Bm) / 2, ((A.mean(0) + Bm.mean(0)) / 2)[None]])
    assert torch.equal(got, want)  # [1, -1] [2, -2] [3, -3] averaged with 3x, then their mean
    assert json.loads((tmp_path / "out" / "config.json").read_text())["vocab_size"] == 4


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (
            {"tokenizer": {"source": "base", "foo": 1}},
            "tokenizer: unknown key 'foo' (known: source, tokens, pad_to_multiple_of)",
        ),
        (
            {"tokenizer": {"source": "base"}, "tokenizer_source": "base"},
            "recipe has both 'tokenizer' and 'tokenizer_source': give one",
        ),
        (
            {"tokenizer": {"pad_to_multiple_of": 0}},
            "tokenizer.pad_to_multiple_of must be a positive integer, got 0",
        ),
        (
            {"tokenizer": {"tokens": {"<x>": {"force": True}}}},
            "tokenizer.tokens['<x>']: needs a source (a model path, model_token or zero)",
        ),
    ],
)
def test_bad_tokenizer_blocks_fail_in_one_line(block: dict, message: str) -> None:
    with pytest.raises(MergeError) as info:
        parse_tokenizer(block)
    assert str(info.value) == message


def test_block_defaults_to_union_as_in_mergekit(tmp_path: Path) -> None:
    a = make_model(tmp_path, "a", T6)
    recipe = load_recipe({"merge_method": "linear", "models": [{"model": str(a)}], "tokenizer": {}})
    assert recipe.tokenizer is not None and recipe.tokenizer.source == "union"


def test_vocabulary_mismatch_warning_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = make_model(tmp_path, "a", T6)
    b = make_model(tmp_path, "b", T6, rows=8)
    recipe = {"merge_method": "linear", "models": [{"model": str(a)}, {"model": str(b)}]}
    assert recipe_vocab_warning(recipe) == (
        f"vocabularies differ ({a}: vocab_size 6, 6 tokens; {b}: vocab_size 8, 6 tokens); no "
        "tokenizer block, so the merge fails at planning: add tokenizer: {source: base | union | "
        "<model path>} to the recipe"
    )
    handled = recipe_vocab_warning({**recipe, "tokenizer": {"source": "base"}})
    assert handled is not None and handled.endswith("; handled by tokenizer: {source: base}")
    assert mismatch_line([("a", a), ("missing", tmp_path / "not-built")], None) is None
    added = make_model(tmp_path, "added", T6[:5], ("<x>",))  # 6 rows too, but other tokens
    assert mismatch_line([("a", a), ("added", added)], None) == (
        "vocabularies differ (a: vocab_size 6, 6 tokens; added: vocab_size 6, 6 tokens); no "
        "tokenizer block: the rows match, so the merge would mix rows of different tokens: add "
        "tokenizer: {source: base | union | <model path>} to the recipe"
    )

    # the workflow's dry-run check: the built base and the selected models that exist
    monkeypatch.chdir(tmp_path)
    run = Path("results/t")
    make_model(run / "models", "base", T6)
    make_model(run / "models" / "dpo" / "helpfulness", "c1", T6, ("<x>",))
    (run / "selection" / "dpo").mkdir(parents=True)
    (run / "selection" / "dpo" / "helpfulness.json").write_text(
        '{"selected": "dpo/helpfulness/c1"}'
    )
    config = {
        "run": "t",
        "base_model": {"path": "org/never-fetched"},
        "merge": {
            "settings": {"static": ["helpfulness", "honesty"]},  # honesty: not selected yet
            "methods": {
                "ties": {"merge_method": "ties"},
                "ta": {"merge_method": "task_arithmetic", "tokenizer": {"source": "union"}},
                "soup": {"merge_method": "linear"},  # no base: one model, nothing to compare
            },
        },
    }
    assert vocab_warnings(config) == [
        "merge recipe static/ties: vocabularies differ (base: vocab_size 6, 6 tokens; "
        "dpo/helpfulness/c1: vocab_size 7, 7 tokens); no tokenizer block, so the merge fails at "
        "planning: add tokenizer: {source: base | union | <model path>} to merge.tokenizer or "
        "merge.methods.ties.tokenizer",
        "merge recipe static/ta: vocabularies differ (base: vocab_size 6, 6 tokens; "
        "dpo/helpfulness/c1: vocab_size 7, 7 tokens); handled by tokenizer: {source: union}",
    ]
    config["merge"]["tokenizer"] = {"source": "bas e", "extra": 1}
    with pytest.raises(ValueError, match=r"^merge.tokenizer: tokenizer: unknown key 'extra'"):
        vocab_warnings(config)


def test_the_workflow_s_check_imports_no_torch() -> None:
    """merge.smk calls vocab_warnings when Snakemake parses the workflow: no torch import."""
    code = (
        "import sys, mixmerge.merge.from_config, mixmerge.merge.vocab; "
        "print(sorted({'torch', 'transformers', 'tokenizers'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
