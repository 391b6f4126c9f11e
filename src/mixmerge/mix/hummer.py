r"""Hummer mixture: label every pair's alignment dimension with an LLM judge, keep the mix's ADC low.

Labels. One judge (config `mixtures.hummer.judge`, default `evaluate.judge`) reads each pair with
the prompt `mixmerge/judge/prompts/hummer.yaml` and answers one of ten classes: the dimension
k in K = {helpfulness, honesty, harmlessness} on which the chosen response is preferred, and
optionally one other dimension j != k on which the chosen response is at the same time worse
("helpful", "helpful_but_less_honest", ...), or "no_clear_preference". A pair with such a j is a
*conflicting* pair: it teaches "better on k" and "worse on j" at once. "no_clear_preference"
pairs are noise and dropped, as Hummer-F filters them (`dropped_as_noise`). Unparsable verdicts
(API judges) drop the pair too (`unlabelled_pairs`).

ADC. Hummer (Jiang et al., arXiv 2405.11647) defines the alignment-dimension conflict of a
preference dataset as the second-order moment of the *negative* performance deviations across
alignment dimensions: fine-tune a reward model on the data of dimension k, measure the change on
every other dimension j, keep only the drops. `adc: reward_models` (the default) measures the
mix's ADC exactly so, with reward models trained per dimension (mixmerge.mix.hummer_adc).

Choosing pairs needs an ADC for every candidate mix, and training reward models per candidate is
out of the question, so the selection uses the label estimate (`adc: labels` reports it as the
mix's ADC too). For a mix M, with n_k pairs preferred on k, of which c_kj are worse on j:

    delta_kj = -c_kj / n_k                       (share of the k-data that pushes j down; <= 0)
    ADC(M)   = sqrt( 1/|T| * sum_{(k, j) in T} delta_kj^2 ),
    T        = {(k, j) : k, j in K, j != k, n_k > 0}

i.e. the root of the second moment of the negative deviations, so that ADC is on the scale of a
share of conflicting pairs. Examples: no conflicting pair -> 0; if 20% of every dimension's pairs
conflict with one other dimension (and none with the third) -> sqrt(0.04 / 2) ~ 0.141. The
default `threshold` is 0.05: at 0.2 about half of a dimension's pairs could conflict with one
other dimension (sqrt(0.5^2 / 6) = 0.204), which barely constrains the mix; 0.05 allows about 12%.

Selection. Start from every non-conflicting pair (ADC 0); then add conflicting pairs one at a
time, each time from the (k, j) cell whose next pair raises ADC the least (cells in a seeded
order inside), while ADC stays <= `threshold`. With a `budget`, the result is then cut to the
budget proportionally per cell (largest remainder), and conflicting pairs removed (least ADC
first) until the cut mix is back under the threshold. Recorded in `<mix>.mix.json`: the achieved
ADC (`adc`, and `adc_labels`), the share of the pool's conflicting pairs kept
(`conflicting_kept_share`) and the pairs dropped as noise.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mixmerge.judge import JudgePrompt
from mixmerge.judge.cache import JsonlCache
from mixmerge.judge.settings import JudgeSettings
from mixmerge.judge.settings import backend as judge_backend
from mixmerge.mix.common import (
    Pair,
    allocate,
    model_identity,
    seeded_rng,
    sha256_json,
    slug,
)
from mixmerge.mix.settings import HummerSettings

log = logging.getLogger(__name__)

DIMENSIONS = ("helpfulness", "honesty", "harmlessness")
_ADJECTIVE = {"helpfulness": "helpful", "honesty": "honest", "harmlessness": "harmless"}
_NOUN = {adj: dim for dim, adj in _ADJECTIVE.items()}
CONFLICT_CELLS = tuple((k, j) for k in DIMENSIONS for j in DIMENSIONS if j != k)

Label = tuple[str, str | None]  # (preferred dimension, dimension it is worse on | None)


def label_name(preferred: str, worse: str | None = None) -> str:
    """("helpfulness", "honesty") -> "helpful_but_less_honest"."""
    base = _ADJECTIVE[preferred]
    return base if worse is None else f"{base}_but_less_{_ADJECTIVE[worse]}"


NOISE = "no_clear_preference"  # Hummer-F: the preference is not clear; the pair is dropped
LABELS = (
    *(label_name(k, j) for k in DIMENSIONS for j in (None, *DIMENSIONS) if j != k),
    NOISE,
)


def parse_label(name: str) -> Label | str:
    """ "helpful_but_less_honest" -> ("helpfulness", "honesty"); NOISE stays NOISE."""
    if name == NOISE:
        return NOISE
    head, _, tail = name.partition("_but_less_")
    if head not in _NOUN or (tail and (tail not in _NOUN or tail == head)):
        raise ValueError(f"not a Hummer label: {name!r} (known: {', '.join(LABELS)})")
    return _NOUN[head], (_NOUN[tail] if tail else None)


# ---- ADC -------------------------------------------------------------------------------------


def _counts(labels: Sequence[Label]) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    n = {k: 0 for k in DIMENSIONS}
    c = {cell: 0 for cell in CONFLICT_CELLS}
    for k, j in labels:
        n[k] += 1
        if j is not None:
            c[(k, j)] += 1
    return n, c


def _adc(n: Mapping[str, int], c: Mapping[tuple[str, str], int]) -> float:
    terms = [(c[(k, j)] / n[k]) ** 2 for k, j in CONFLICT_CELLS if n[k] > 0]
    return math.sqrt(sum(terms) / len(terms)) if terms else 0.0


def deviations(labels: Sequence[Label]) -> dict[str, dict[str, float]]:
    """delta_kj = -c_kj / n_k for every dimension k present in the labels."""
    n, c = _counts(labels)
    return {k: {j: -c[(k, j)] / n[k] for j in DIMENSIONS if j != k} for k in DIMENSIONS if n[k] > 0}


def adc(labels: Sequence[Label]) -> float:
    """Alignment-dimension conflict of a labelled mix (see the module docstring)."""
    return _adc(*_counts(labels))


# ---- selection -------------------------------------------------------------------------------


def select_low_conflict(
    labels: Sequence[Label | None],
    threshold: float,
    seed: int,
    budget: int | None = None,
) -> list[int]:
    """Indices (increasing) of the largest mix found whose ADC <= threshold; None labels skipped."""
    if threshold < 0:
        raise ValueError(f"mixtures.hummer.threshold must be >= 0, got {threshold}")
    rng = seeded_rng(seed, "hummer")
    clean: dict[str, list[int]] = {k: [] for k in DIMENSIONS}
    conflict: dict[tuple[str, str], list[int]] = {cell: [] for cell in CONFLICT_CELLS}
    for i, lab in enumerate(labels):
        if lab is None:
            continue
        k, j = lab
        (clean[k] if j is None else conflict[(k, j)]).append(i)
    for cell_list in [*clean.values(), *conflict.values()]:
        rng.shuffle(cell_list)

    n = {k: len(clean[k]) for k in DIMENSIONS}
    c = {cell: 0 for cell in CONFLICT_CELLS}

    def with_added(cell: tuple[str, str], step: int) -> float:
        n[cell[0]] += step
        c[cell] += step
        value = _adc(n, c)
        n[cell[0]] -= step
        c[cell] -= step
        return value

    while True:  # grow: the cheapest conflicting pair next, while ADC stays under the threshold
        options = [
            (with_added(cell, 1), idx, cell)
            for idx, cell in enumerate(CONFLICT_CELLS)
            if c[cell] < len(conflict[cell])
        ]
        if not options:
            break
        value, _, cell = min(options)
        if value > threshold + 1e-12:
            break
        n[cell[0]] += 1
        c[cell] += 1

    if budget is not None and sum(n.values()) > budget:
        sizes = {
            ("clean", k): n[k] - sum(c[(k, j)] for j in DIMENSIONS if j != k) for k in DIMENSIONS
        }
        sizes.update({("conflict", cell): c[cell] for cell in CONFLICT_CELLS})
        cut = allocate(budget, sizes)
        n = {
            k: cut[("clean", k)] + sum(cut[("conflict", (k, j))] for j in DIMENSIONS if j != k)
            for k in DIMENSIONS
        }
        c = {cell: cut[("conflict", cell)] for cell in CONFLICT_CELLS}
        while _adc(n, c) > threshold + 1e-12:  # rounding can push it over: shed conflicts
            value, _, cell = min(
                (with_added(cell, -1), idx, cell)
                for idx, cell in enumerate(CONFLICT_CELLS)
                if c[cell] > 0
            )
            n[cell[0]] -= 1
            c[cell] -= 1

    kept: list[int] = []
    for k in DIMENSIONS:
        kept += clean[k][: n[k] - sum(c[(k, j)] for j in DIMENSIONS if j != k)]
    for cell in CONFLICT_CELLS:
        kept += conflict[cell][: c[cell]]
    return sorted(kept)


# ---- labelling -------------------------------------------------------------------------------


def load_hummer_prompt() -> dict[str, Any]:
    """The labelling prompt (system, user with {conversation} {chosen} {rejected}, labels)."""
    path = resources.files("mixmerge.judge").joinpath("prompts", "hummer.yaml")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if tuple(data.get("labels", ())) != LABELS:
        raise ValueError(f"{path}: labels must be {list(LABELS)}")
    return data


def render_conversation(messages: Sequence[Mapping[str, str]]) -> str:
    return "\n\n".join(f"{m['role'].upper()}: {m['content']}" for m in messages)


JudgeFactory = Callable[[dict[str, Any], Any], Any]


class PairLabeller:
    """Labels pairs through a disk cache; one judge, created only when something is missing.

    Counters: `hits` pairs served from the cache, `requests` pairs sent to the judge,
    `unparsed` verdicts without a label (not cached, so a rerun asks again).
    """

    def __init__(
        self,
        judge_cfg: Mapping[str, Any],
        cache_dir: str | Path,
        chunk: int = 64,
        judge_factory: JudgeFactory | None = None,
    ) -> None:
        if not judge_cfg.get("model"):
            raise ValueError(
                "mixtures.hummer: the judge needs a model (mixtures.hummer.judge or evaluate.judge)"
            )
        self.judge_cfg = dict(judge_cfg)
        self.prompt = load_hummer_prompt()
        model = str(self.judge_cfg["model"])
        settings = JudgeSettings.from_config(self.judge_cfg)
        backend = settings.backend
        # a local judge model is identified by its files (a rebuilt model invalidates labels);
        # an API model by its name
        self.identity = [
            backend,
            self.judge_cfg.get("mode"),
            model_identity(model) if judge_backend(backend).loads_model else model,
            float(settings.temperature),
        ]
        self.cache = JsonlCache(Path(cache_dir) / "hummer" / f"{slug(model)}.jsonl")
        self.chunk = max(int(chunk), 1)
        self._factory = judge_factory
        self.hits = self.requests = self.unparsed = 0
        self.judge_info: dict[str, str] = {"judge_backend": backend, "judge_model": model}

    def render(self, pair: Pair) -> JudgePrompt:
        fields = {
            "conversation": render_conversation(pair["prompt"]),
            "chosen": pair["chosen"],
            "rejected": pair["rejected"],
        }
        system = self.prompt.get("system")
        return JudgePrompt(user=self.prompt["user"].format(**fields), system=system or None)

    def key(self, item: JudgePrompt) -> str:
        return sha256_json([self.identity, item.system, item.user, list(LABELS)])

    def label(self, pairs: Sequence[Pair]) -> list[Label | str | None]:
        """One label per pair: (dimension, worse-on dimension | None), NOISE, or None when the
        judge's reply could not be parsed."""
        items = [self.render(p) for p in pairs]
        keys = [self.key(it) for it in items]
        todo, hits = self.cache.missing(zip(keys, items, strict=True))
        self.hits += hits
        if todo:
            factory = self._factory
            if factory is None:
                from mixmerge.judge import make_judge as factory
            cache_dir = self.judge_cfg.get("cache_dir")
            pending = list(todo.items())
            with factory(self.judge_cfg, Path(cache_dir) if cache_dir else None) as judge:
                self.judge_info = judge.describe()
                for start in range(0, len(pending), self.chunk):
                    part = pending[start : start + self.chunk]
                    verdicts = judge.classify([item for _, item in part], LABELS)
                    self.requests += len(part)
                    fresh = {}
                    for (key, _), verdict in zip(part, verdicts, strict=True):
                        if verdict.parsed and verdict.label in LABELS:
                            fresh[key] = {"label": verdict.label}
                        else:
                            self.unparsed += 1
                    self.cache.put_many(fresh)  # after every chunk: a killed run keeps its labels
        out: list[Label | str | None] = []
        for key in keys:
            record = self.cache.get(key)
            out.append(parse_label(record["label"]) if record else None)
        return out

    def stats(self) -> dict[str, Any]:
        return {
            **self.judge_info,
            "cache_hits": self.hits,
            "requests": self.requests,
            "unparsed": self.unparsed,
            "cache_file": str(self.cache.path),
        }


def label_counts(labels: Sequence[Label | str | None]) -> dict[str, int]:
    counts = {name: 0 for name in LABELS}
    for lab in labels:
        if lab == NOISE:
            counts[NOISE] += 1
        elif isinstance(lab, tuple):
            counts[label_name(*lab)] += 1
    return counts


def hummer_mix(
    pool: Sequence[Pair],
    hummer: HummerSettings,
    judge_cfg: Mapping[str, Any],
    *,
    seed: int,
    cache_dir: str | Path,
    judge_factory: JudgeFactory | None = None,
) -> tuple[list[Pair], dict[str, Any]]:
    """Label the pool, drop the noise, select a mix under the threshold; measure its ADC.

    The selection uses the label estimate (cheap enough to evaluate pair by pair); the mix's
    reported `adc` is then measured with `adc` = "reward_models" (mixmerge.mix.hummer_adc,
    Hummer's definition; needs `reward_models`) or is the label estimate (`adc: labels`).
    """
    threshold, budget, estimator = hummer.threshold, hummer.budget, hummer.adc
    if estimator == "reward_models" and hummer.reward_models is None:
        raise ValueError(
            "mixtures.hummer.adc: reward_models needs mixtures.hummer.reward_models.path "
            "(or set adc: labels for the label-based estimate)"
        )
    labeller = PairLabeller(judge_cfg, cache_dir, hummer.chunk, judge_factory)
    labels = labeller.label(pool)
    noise = [i for i, lab in enumerate(labels) if lab == NOISE]
    usable: list[Label | None] = [lab if isinstance(lab, tuple) else None for lab in labels]
    kept = select_low_conflict(usable, threshold, seed, budget)
    mix_labels = [usable[i] for i in kept]
    labelled = [lab for lab in usable if lab is not None]
    conflicting = sum(1 for lab in mix_labels if lab and lab[1])
    stats: dict[str, Any] = {
        "threshold": threshold,
        "budget": budget,
        "adc_estimator": estimator,
        "adc_labels": adc(mix_labels),  # type: ignore[arg-type]
        "adc_labels_pool": adc(labelled),
        "conflict_rate": conflicting / max(len(mix_labels), 1),
        "conflict_rate_pool": sum(1 for lab in labelled if lab[1]) / max(len(labelled), 1),
        # of the pool's conflicting pairs, the share the threshold let into the mix
        "conflicting_kept_share": conflicting
        / max(sum(1 for lab in labelled if lab[1]), 1),
        "dropped_as_noise": len(noise),
        "deviations_labels": deviations(mix_labels),  # type: ignore[arg-type]
        "label_counts": label_counts(mix_labels),
        "label_counts_pool": label_counts(labels),
        "pool_pairs": len(pool),
        "unlabelled_pairs": sum(1 for lab in labels if lab is None),
        "labelling": labeller.stats(),
    }
    mix = [pool[i] for i in kept]
    if hummer.reward_models is not None and estimator == "reward_models":
        from mixmerge.mix.hummer_adc import reward_model_adc

        measured = reward_model_adc(
            mix,
            [lab[0] for lab in mix_labels],  # type: ignore[index]
            hummer.reward_models,
            seed=seed,
            work_dir=Path(cache_dir) / "hummer_adc",
        )
        stats["adc"] = measured["adc"]
        stats["adc_reward_models"] = measured
    else:
        stats["adc"] = stats["adc_labels"]
    return mix, stats
