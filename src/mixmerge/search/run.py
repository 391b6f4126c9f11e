"""`mixmerge search run`: one space's multi-objective study, its front, and the selected recipes.

Each trial: the sampler proposes the space's parameters; the group models are merged with them
(into the one resident model, or into a scratch directory with `in_memory: false`); the merge is
scored on the held-out items (`mixmerge search dev-items`, evaluate/dev_items.py) by the
benchmarks' own runners; its objectives are the Helpful, Honest and Harmless means of those dev
scores. Nothing of the reported test items is read.

Resume: the study lives in `<out>/study.db` (Optuna's SQLite storage). A finished trial is never
run again. A trial a killed run left running is marked failed and its parameters are run first on
restart, and each proposal's sampler is seeded by the seed and the number of finished trials, so
a resumed study proposes what an uninterrupted one does. The trial's replies are in the
generation cache under its weights' digest, so the re-run trial generates only what the killed one
had not.

Outputs: `<out>/front.json` (every trial's parameters, dev scores and objectives, the front, the
hypervolume after each trial, the selected points), `<out>/trials/<n>/` (recipe, dev score
files and samples), and one recipe per selected point in `--recipes`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from statistics import mean
from typing import Any

import yaml

from mixmerge.catalog import GROUPS
from mixmerge.evaluate.dev_items import MANIFEST
from mixmerge.evaluate.run import evaluate_model
from mixmerge.io import atomic_file, read_json, write_json
from mixmerge.merge.from_config import setting_models
from mixmerge.merge.settings import RecipeSettings
from mixmerge.search.front import best_weighted, hypervolume, knee, non_dominated
from mixmerge.search.settings import SearchSettings
from mixmerge.search.spaces import Space

log = logging.getLogger(__name__)

def make_sampler(settings: SearchSettings, finished: int) -> Any:
    """The sampler of the next proposal, seeded by the search seed and the finished trials."""
    import optuna

    seed = settings.seed * 1_000_003 + finished
    if settings.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    return optuna.samplers.NSGAIISampler(seed=seed)


def objectives(scores: Mapping[str, float], groups: Mapping[str, str]) -> tuple[float, ...]:
    """(helpful, honest, harmless): the mean dev score of each group's benchmarks."""
    return tuple(mean(scores[b] for b, g in groups.items() if g == group) for group in GROUPS)


class Resident:
    """The base model loaded once; every trial's merge is written into its tensors."""

    def __init__(self, base: Path, model_dir: Path, device: str, dtype: Any) -> None:
        from transformers import AutoModelForCausalLM

        from mixmerge.runtime.generation import load_tokenizer, pin_model

        # in the merge's output dtype: the resident model is what the merge would write to disk
        self.model = AutoModelForCausalLM.from_pretrained(str(base), dtype=dtype)
        self.model.to(device).eval()
        self.targets = self.model.state_dict()
        self.model_dir = model_dir
        pin_model(model_dir, self.model, load_tokenizer(base))


def _trial_model_dir(base: Path, out: Path) -> Path:
    """A model directory without weights (the base's config and tokenizer files, as a merge
    writes them) that names the resident model."""
    from mixmerge.merge.engine import COPIED_FILES

    target = out / "model"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", *COPIED_FILES):
        if (base / name).is_file():
            shutil.copyfile(base / name, target / name)
    return target


class Search:
    """One space's study over the selected group models of the search's setting."""

    def __init__(self, cfg: Mapping[str, Any], space: str, dev_dir: Path, out: Path) -> None:
        self.cfg = dict(cfg)
        self.settings = SearchSettings.from_config(cfg)
        if space not in self.settings.spaces:
            raise ValueError(f"unknown search space {space!r} (search.spaces: {', '.join(self.settings.spaces)})")
        self.space: Space = self.settings.spaces[space].check()
        self.out = Path(out)
        self.manifest = read_json(Path(dev_dir) / MANIFEST)
        self.groups = {b: e["group"] for b, e in self.manifest["benchmarks"].items()}
        missing = [g for g in GROUPS if g not in self.groups.values()]
        if missing:
            raise ValueError(
                f"search: no held-out benchmark measures {', '.join(missing)} (left out: "
                + "; ".join(f"{b}: {why}" for b, why in self.manifest["left_out"].items())
                + "); add one to search.benchmarks, e.g. truthfulqa_mc2 for honest"
            )
        recipe_settings = RecipeSettings.from_config(cfg)
        self.models = setting_models(recipe_settings, self.settings.setting)
        self.base = recipe_settings.run_dir / "models" / "base"
        self.dtype = self.space.dtype or recipe_settings.dtype
        self.device = str(cfg["evaluate"].get("device", "cpu"))
        self.merge_device = str(cfg["merge"].get("device", "cpu"))
        self.merge_seed = int(cfg.get("seed", 0))
        generation = {**(cfg["evaluate"].get("generation") or {}), **self.settings.generation}
        backend = generation.get("backend", "hf")
        if self.settings.in_memory and backend != "hf":
            raise ValueError(
                "search.in_memory needs evaluate.generation.backend hf (vLLM loads weights from "
                "disk): set search.generation.backend: hf, or search.in_memory: false to merge "
                "each trial to a scratch directory"
            )
        self.eval_cfg = {
            **self.cfg,
            "evaluate": {
                **cfg["evaluate"],
                "generation": generation,
                "benchmarks": {b: e["config"] for b, e in self.manifest["benchmarks"].items()},
            },
        }
        self._resident: Resident | None = None

    # -- one trial -----------------------------------------------------------------------------

    def _merge(self, recipe: dict[str, Any], trial_dir: Path) -> tuple[Path, str | None]:
        """Merge the trial; (the model directory to evaluate, its digest if not on disk)."""
        if self.settings.in_memory:
            from mixmerge.merge.engine import merge_into, output_dtype

            if self._resident is None:  # loaded, and its directory written, once per search
                model_dir = _trial_model_dir(self.base, self.out)
                self._resident = Resident(self.base, model_dir, self.device, output_dtype(recipe))
            digest = merge_into(recipe, self._resident.targets, self.merge_device, self.merge_seed)
            return self._resident.model_dir, digest
        from mixmerge.merge.engine import run_merge

        model_dir = trial_dir / "model"
        shutil.rmtree(model_dir, ignore_errors=True)
        run_merge(recipe, model_dir, self.merge_device, self.merge_seed, progress=False)
        return model_dir, None

    def run_trial(self, number: int, values: Mapping[str, Any]) -> dict[str, Any]:
        trial_dir = self.out / "trials" / str(number)
        recipe = self.space.recipe(values, self.models, str(self.base), self.dtype)
        with atomic_file(trial_dir / "recipe.yaml") as fh:
            yaml.safe_dump(recipe, fh, sort_keys=False)
        started = time.time()
        model_dir, digest = self._merge(recipe, trial_dir)
        merged = time.time()
        scores: dict[str, float] = {}
        cache = {"model": {"generated": 0, "cached": 0}, "judge": {"generated": 0, "cached": 0}}
        for bench in self.manifest["benchmarks"]:
            record = evaluate_model(self.eval_cfg, model_dir, bench, trial_dir / "scores", digest)
            scores[bench] = float(record["score"])
            for part in ("model", "judge"):
                cache[part]["generated"] += int(record["generated"][part])
                cache[part]["cached"] += int(record["cached"][part])
        if not self.settings.in_memory:
            shutil.rmtree(model_dir, ignore_errors=True)  # a trial keeps no model on disk
        obj = objectives(scores, self.groups)
        return {
            "number": number,
            "params": _plain(values),
            "scores": scores,
            "objectives": dict(zip(GROUPS, obj, strict=True)),
            "avg": mean(obj),
            "digest": digest or record["model_digest"],
            "merge_seconds": round(merged - started, 2),
            "eval_seconds": round(time.time() - merged, 2),
            "cache": cache,
        }

    # -- the study -----------------------------------------------------------------------------

    def identity(self) -> str:
        """What a study's trials depend on: the space, the sampler and its seed, the models and
        the held-out items. A study resumes only under the same identity."""
        what = {
            "space": dataclasses.asdict(self.space),
            "sampler": [self.settings.sampler, self.settings.seed],
            "models": self.models,
            "merge_seed": self.merge_seed,
            "dev": {b: e["dev_items"] for b, e in self.manifest["benchmarks"].items()},
        }
        return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()

    def study(self) -> Any:
        import optuna

        self.out.mkdir(parents=True, exist_ok=True)
        db = (self.out / "study.db").resolve()
        study = optuna.create_study(
            study_name=self.space.name,
            storage=optuna.storages.RDBStorage(f"sqlite:///{db}"),
            directions=["maximize"] * len(GROUPS),
            load_if_exists=True,
            sampler=make_sampler(self.settings, 0),
        )
        identity = self.identity()
        found = study.user_attrs.get("identity")
        if found is None:
            study.set_user_attr("identity", identity)
        elif found != identity:
            raise ValueError(
                f"{db} holds a study of another space, sampler, seed, model set or held-out "
                f"items than this config's: delete it to start {self.space.name} again"
            )
        return study

    def run(self) -> dict[str, Any]:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = self.study()
        interrupted = _requeue_interrupted(study)
        done = _finished(study)
        if interrupted:
            log.info("%s: %d trial(s) left running by a killed run: rerun first", self.space.name, interrupted)
        log.info("%s: %d of %d trials finished", self.space.name, len(done), self.settings.trials)
        groups = [*self.models]
        while len(done) < self.settings.trials:
            study.sampler = make_sampler(self.settings, len(done))
            trial = study.ask()
            values = self.space.suggest(trial, groups)
            result = self.run_trial(trial.number, values)
            trial.set_user_attr("result", result)
            study.tell(trial, list(result["objectives"].values()))
            done = _finished(study)
            log.info(
                "%s trial %d (%d/%d): %s; merge %.1fs, eval %.1fs, cache %s",
                self.space.name, trial.number, len(done), self.settings.trials,
                {k: round(v, 2) for k, v in result["objectives"].items()},
                result["merge_seconds"], result["eval_seconds"], result["cache"],
            )
        return self.front(study)

    def front(self, study: Any) -> dict[str, Any]:
        """front.json's content from the finished trials, in finishing order."""
        results = [t.user_attrs["result"] for t in _finished(study)]
        vectors = {r["number"]: tuple(r["objectives"][g] for g in GROUPS) for r in results}
        front = non_dominated(vectors)
        on_front = {k: vectors[k] for k in front}
        selected: dict[str, int] = {}
        for point in self.settings.select:
            if point.name == "best_avg":
                selected[point.name] = best_weighted(vectors, [1.0] * len(GROUPS))
            elif point.name == "knee":
                selected[point.name] = knee(on_front)
            else:
                selected[point.name] = best_weighted(vectors, [point.weights.get(g, 0.0) for g in GROUPS])
        hv = [hypervolume([vectors[r["number"]] for r in results[: i + 1]]) for i in range(len(results))]
        return {
            "space": self.space.name,
            "merge_method": self.space.merge_method,
            "setting": self.settings.setting,
            "sampler": self.settings.sampler,
            "seed": self.settings.seed,
            "objectives": list(GROUPS),
            "dev_benchmarks": self.groups,
            "left_out": self.manifest["left_out"],
            "trials": results,
            "front": front,
            "hypervolume": hv,
            "reference_point": [0.0] * len(GROUPS),
            "selected": selected,
            "failed_trials": sum(1 for t in study.trials if t.state.name == "FAIL"),
        }


def _finished(study: Any) -> list[Any]:
    import optuna

    return sorted(
        study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)),
        key=lambda t: t.datetime_complete,
    )


def _requeue_interrupted(study: Any) -> int:
    """Mark the trials a killed run left RUNNING as failed, and enqueue their parameters (once),
    so the next proposal is the interrupted one. Returns how many there were."""
    import optuna

    stale = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in stale:
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(trial.params, skip_if_exists=True)
    return len(stale)


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: dict(v) if isinstance(v, Mapping) else v for k, v in values.items()}


def write_outputs(result: dict[str, Any], out: Path, recipes: Path) -> None:
    """front.json and the recipe of each selected point (the trial's own recipe)."""
    for point, number in result["selected"].items():
        text = (out / "trials" / str(number) / "recipe.yaml").read_text(encoding="utf-8")
        with atomic_file(Path(recipes) / f"{point}.yaml") as fh:
            fh.write(f"# search {result['space']}: point {point} = trial {number}\n{text}")
    write_json(out / "front.json", result)
