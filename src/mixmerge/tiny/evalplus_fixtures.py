"""Tiny synthetic HumanEval+ / MBPP+ problem files in evalplus's real release schema.

- `humaneval_plus/HumanEvalPlus.jsonl`: rows like evalplus/humanevalplus_release
  `{task_id: "HumanEval/N", prompt, entry_point, canonical_solution, test, contract, base_input,
  atol, plus_input}`; `prompt` is the signature + docstring, `canonical_solution` the body.
- `mbpp_plus/MbppPlus.jsonl`: rows like evalplus/mbppplus_release
  `{task_id: "Mbpp/N", prompt, entry_point, canonical_solution, base_input, atol, plus_input,
  contract, assertion}`; `prompt` is a quoted task description with one example assert,
  `canonical_solution` the whole function.

Problems are simple (add two numbers, reverse a string, ...). Every problem's `plus_input` holds
edge cases absent from `base_input` (empty inputs, negatives, ...), so a solution that only
handles the base tests fails the "+" score, as with the real data. Task ids and entry points
avoid the ids and names evalplus treats specially (MBPP ids <= 809, `find_zero`, ...).
Everything is deterministic from `seed`.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixmerge.io import write_jsonl
from mixmerge.tiny import text

MBPP_FIRST_ID = 901  # above every real MBPP+ id: no special input handling in evalplus
N_BASE, N_PLUS = 3, 6

Inputs = list[list[Any]]


@dataclass(frozen=True)
class Template:
    entry_point: str
    params: str  # typed parameter list of the signature
    returns: str
    doc: str  # one sentence, imperative ("Return ...")
    body: str  # function body, 4-space indented, ends with a newline
    contract: tuple[str, ...]  # input-validity asserts (evalplus's `contract` field)
    base: Callable[[random.Random], Inputs]  # typical inputs
    plus: Callable[[random.Random], Inputs]  # edge cases + larger inputs, none of them in base
    atol: float = 0


def _ints(rng: random.Random, n: int, lo: int, hi: int) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(n)]


def _word(rng: random.Random, lo: int = 3, hi: int = 8) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(lo, hi)))


TEMPLATES: tuple[Template, ...] = (
    Template(
        "add_numbers",
        "a: int, b: int",
        "int",
        "Return the sum of a and b.",
        "    return a + b\n",
        ("isinstance(a, int)", "isinstance(b, int)"),
        lambda r: [_ints(r, 2, 1, 50) for _ in range(N_BASE)],
        lambda r: [[0, 0], [-7, 3], [10**12, 10**12]] + [_ints(r, 2, -999, 999) for _ in range(3)],
    ),
    Template(
        "reverse_text",
        "s: str",
        "str",
        "Return the string s reversed.",
        "    return s[::-1]\n",
        ("isinstance(s, str)",),
        lambda r: [[_word(r)] for _ in range(N_BASE)],
        lambda r: [[""], ["a"], ["ab ba!"]] + [[_word(r, 10, 30)] for _ in range(3)],
    ),
    Template(
        "largest_item",
        "xs: list",
        "int",
        "Return the largest number in the list xs, or None when xs is empty.",
        "    if not xs:\n        return None\n    return max(xs)\n",
        ("isinstance(xs, list)",),
        lambda r: [[_ints(r, 4, 1, 99)] for _ in range(N_BASE)],
        lambda r: [[[]], [[-5, -2, -9]], [[7]]] + [[_ints(r, 20, -500, 500)] for _ in range(3)],
    ),
    Template(
        "count_vowels",
        "s: str",
        "int",
        "Return how many vowels (a, e, i, o, u, in either case) the string s contains.",
        '    return sum(1 for c in s if c in "aeiouAEIOU")\n',
        ("isinstance(s, str)",),
        lambda r: [[_word(r)] for _ in range(N_BASE)],
        lambda r: [[""], ["AEIOU"], ["rhythm"]] + [[_word(r, 12, 40)] for _ in range(3)],
    ),
    Template(
        "is_palindrome",
        "s: str",
        "bool",
        "Return True if the string s reads the same forwards and backwards.",
        "    return s == s[::-1]\n",
        ("isinstance(s, str)",),
        lambda r: [["level"], [_word(r)], ["noon"]],
        lambda r: [[""], ["a"], ["ab"], ["abcba"]] + [[_word(r, 5, 9)] for _ in range(2)],
    ),
    Template(
        "sum_of_squares",
        "n: int",
        "int",
        "Return the sum of the squares of the integers from 1 to n (0 when n is 0).",
        "    return sum(i * i for i in range(1, n + 1))\n",
        ("isinstance(n, int)", "n >= 0"),
        lambda r: [[k] for k in r.sample(range(2, 10), N_BASE)],
        lambda r: [[0], [1], [100]] + [[k] for k in r.sample(range(11, 60), 3)],
    ),
    Template(
        "factorial_of",
        "n: int",
        "int",
        "Return n factorial (the product of 1..n; 1 when n is 0).",
        "    result = 1\n    for i in range(2, n + 1):\n        result *= i\n    return result\n",
        ("isinstance(n, int)", "n >= 0"),
        lambda r: [[k] for k in r.sample(range(2, 8), N_BASE)],
        lambda r: [[0], [1], [20]] + [[k] for k in r.sample(range(9, 30), 3)],
    ),
    Template(
        "mean_value",
        "xs: list",
        "float",
        "Return the arithmetic mean of the non-empty list of numbers xs.",
        "    return sum(xs) / len(xs)\n",
        ("isinstance(xs, list)", "len(xs) > 0"),
        lambda r: [[_ints(r, 4, 1, 20)] for _ in range(N_BASE)],
        lambda r: (
            [[[0.1, 0.2, 0.3]], [[-4, 4]], [[5]]]
            + [[[round(r.uniform(-50, 50), 3) for _ in range(9)]] for _ in range(3)]
        ),
        atol=1e-6,
    ),
    Template(
        "count_words",
        "s: str",
        "int",
        "Return the number of words in s, where words are separated by whitespace.",
        "    return len(s.split())\n",
        ("isinstance(s, str)",),
        lambda r: [[" ".join(_word(r) for _ in range(k))] for k in (2, 3, 4)],
        lambda r: (
            [[""], ["   "], ["one  two\tthree\nfour"]]
            + [[" ".join(_word(r) for _ in range(r.randint(5, 12)))] for _ in range(3)]
        ),
    ),
    Template(
        "clamp_value",
        "x: int, lo: int, hi: int",
        "int",
        "Return x limited to the range [lo, hi].",
        "    return max(lo, min(x, hi))\n",
        ("isinstance(x, int)", "lo <= hi"),
        lambda r: [[r.randint(3, 7), 0, 10] for _ in range(N_BASE)],
        lambda r: (
            [[-5, 0, 10], [15, 0, 10], [4, 4, 4]]
            + [[r.randint(-100, 100), -10, 10] for _ in range(3)]
        ),
    ),
)


def _run(template: Template, inputs: Inputs) -> list[Any]:
    """Outputs of the canonical solution (our own code) for the docstring / assert examples."""
    scope: dict[str, Any] = {}
    exec(f"def {template.entry_point}({template.params}):\n{template.body}", scope)
    return [scope[template.entry_point](*inp) for inp in inputs]


def _call(template: Template, inp: list[Any]) -> str:
    return f"{template.entry_point}({', '.join(repr(a) for a in inp)})"


def _check_line(template: Template, inp: list[Any], out: Any, indent: str, fn: str) -> str:
    call = f"{fn}({', '.join(repr(a) for a in inp)})"
    if isinstance(out, float):
        return f"{indent}assert abs({call} - {out!r}) < 1e-6\n"
    return f"{indent}assert {call} == {out!r}\n"


def _contract(template: Template, indent: str) -> str:
    return "".join(
        f'\n{indent}assert {cond}, "invalid inputs" # $_CONTRACT_$' for cond in template.contract
    ) + ("\n" if template.contract else "")


def _pick(rng: random.Random, n_items: int) -> list[tuple[Template, str]]:
    """n_items (template, entry point) pairs; names get a suffix when templates repeat."""
    order = list(TEMPLATES)
    rng.shuffle(order)
    out = []
    for i in range(n_items):
        template = order[i % len(order)]
        lap = i // len(order)
        out.append((template, template.entry_point + (f"_{lap + 1}" if lap else "")))
    return out


def _inputs(template: Template, rng: random.Random) -> tuple[Inputs, Inputs]:
    base = template.base(rng)
    plus = [inp for inp in template.plus(rng) if inp not in base]
    return base, plus


def humaneval_plus_rows(n_items: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(f"humaneval_plus-{seed}")
    rows = []
    for i, (template, name) in enumerate(_pick(rng, n_items)):
        template = dataclasses.replace(template, entry_point=name)
        base, plus = _inputs(template, rng)
        outs = _run(template, base)
        example = f"    >>> {_call(template, base[0])}\n    {outs[0]!r}\n"
        prompt = (
            f"\n\ndef {name}({template.params}) -> {template.returns}:\n"
            f'    """ {template.doc}\n{example}    """\n'
        )
        test = "\n\nMETADATA = {\n    'author': 'mixmerge',\n    'dataset': 'test'\n}\n\n\n"
        test += "def check(candidate):\n" + "".join(
            _check_line(template, inp, out, "    ", "candidate")
            for inp, out in zip(base, outs, strict=True)
        )
        rows.append(
            {
                "task_id": f"HumanEval/{i}",
                "prompt": prompt,
                "entry_point": name,
                "canonical_solution": template.body + "\n",
                "test": test,
                "contract": _contract(template, "    "),
                "base_input": base,
                "atol": template.atol,
                "plus_input": plus,
            }
        )
    return rows


def mbpp_plus_rows(n_items: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(f"mbpp_plus-{seed}")
    rows = []
    for i, (template, name) in enumerate(_pick(rng, n_items)):
        template = dataclasses.replace(template, entry_point=name)
        base, plus = _inputs(template, rng)
        outs = _run(template, base)
        doc = template.doc[0].lower() + template.doc[1:]
        prompt = (
            f'"""\nWrite a function to {doc}\n'
            f"{_check_line(template, base[0], outs[0], '', name)}"
            '"""\n'
        )
        params = ", ".join(p.split(":")[0].strip() for p in template.params.split(","))
        rows.append(
            {
                "task_id": f"Mbpp/{MBPP_FIRST_ID + i}",
                "prompt": prompt,
                "entry_point": name,
                "canonical_solution": f"\ndef {name}({params}):\n{template.body}",
                "base_input": base,
                "atol": template.atol,
                "plus_input": plus,
                "contract": _contract(template, "    "),
                "assertion": "\n"
                + "".join(
                    _check_line(template, inp, out, "", name)
                    for inp, out in zip(base, outs, strict=True)
                ),
            }
        )
    return rows


def _write(out_dir: str | Path, relpath: str, rows: Callable[[int, int], list], n_items: int, seed: int) -> Path:
    text.check_items(n_items)
    path = Path(out_dir) / relpath
    write_jsonl(path, rows(n_items, seed))
    return path


def humaneval_plus(out_dir: str | Path, n_items: int, seed: int) -> Path:
    """`humaneval_plus/HumanEvalPlus.jsonl`."""
    return _write(out_dir, "humaneval_plus/HumanEvalPlus.jsonl", humaneval_plus_rows, n_items, seed)


def mbpp_plus(out_dir: str | Path, n_items: int, seed: int) -> Path:
    """`mbpp_plus/MbppPlus.jsonl`."""
    return _write(out_dir, "mbpp_plus/MbppPlus.jsonl", mbpp_plus_rows, n_items, seed)


def write_evalplus_fixtures(out_dir: str | Path, n_items: int, seed: int) -> dict[str, Path]:
    """Write `humaneval_plus/HumanEvalPlus.jsonl` and `mbpp_plus/MbppPlus.jsonl` under out_dir."""
    return {
        "humaneval_plus": humaneval_plus(out_dir, n_items, seed),
        "mbpp_plus": mbpp_plus(out_dir, n_items, seed),
    }
