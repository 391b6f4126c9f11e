# Config validation, model ids and the input functions every stage shares.
import os
import sys
import tempfile
from pathlib import Path

import yaml

from mixmerge.config import ConfigError, validate
from mixmerge.judge.settings import missing_api_keys
from mixmerge.evaluate.isolation import sandbox_warning
from mixmerge.fetch import check_mirror, config_artifacts
from mixmerge.hub import activate as hub_activate
from mixmerge.mix import MixSettings, heuristic_variants
from mixmerge.naming import density_variant, seed_variant
from mixmerge.search.settings import SearchSettings
from mixmerge.train.settings import TrainSettings

try:
    validate(config)
except ConfigError as err:
    sys.exit(str(err))  # one line naming the key, before any job is scheduled
# Said before any GPU hour is spent; the jobs themselves fail with the same names.
for _variable, _users in missing_api_keys(config).items():
    _where = ", ".join(_users)
    print(f"warning: {_variable} is not set: the API judge of {_where} reads its key from it", file=sys.stderr)
if sandbox_warning(config):
    print(f"warning: {sandbox_warning(config)}", file=sys.stderr)

# With a hub mirror, every artifact the run reads must be in it: say which are not (or hold a
# wrong config name, split or revision) now, not in a job hours later.
_MIRROR = hub_activate(config)
if _MIRROR is not None:
    _problems = check_mirror(config_artifacts(config), _MIRROR)
    if _problems:
        sys.exit(
            f"config error: the hub mirror {_MIRROR} does not serve this config:\n  "
            + "\n  ".join(_problems)
            + "\n(`mixmerge fetch --config <config> --mirror <dir>` downloads what is missing)"
        )

RUN = config["run"]
R = f"results/{RUN}"
LOGS = f"{R}/logs"
GROUPS = list(config["groups"])
DATASETS = [name for names in config["groups"].values() for name in names]
MERGE_METHODS = list(config["merge"]["methods"])
MERGE_SETTINGS = dict(config["merge"]["settings"])
BENCHMARKS = list(config["evaluate"]["benchmarks"])
TINY = config.get("tiny", {}).get("enabled", False)
TRAIN = config["train"]  # as written: the training rules' param, so that editing it reruns them
TRAIN_SETTINGS = TrainSettings.from_config(config)  # with every default filled in
# candidate name -> (beta, learning rate); the sweep grid, or the single default setting.
CANDIDATES = TRAIN_SETTINGS.candidates()
CONTINUAL = list(config.get("continual", {}).get("stages", []))
MERGE_SWEEPS = config["merge"].get("sweeps", {})
MIXTURES = config.get("mixtures", {})
MIX = MixSettings.from_config(config)
MIX_STRATEGIES = list(MIX.strategies)
# heuristic variant name (e.g. 1to10) -> ratio of (honesty + harmlessness) to helpfulness data
HEURISTIC = heuristic_variants(MIX.heuristic) if "heuristic" in MIX_STRATEGIES else {}
# The grid every mixture is trained over (default: the group models' own), best kept per strategy.
MIX_CANDIDATES = TRAIN_SETTINGS.candidates(MIX.sweep)
try:  # the search: block, checked against the registered methods' parameters (search.smk)
    SEARCH = SearchSettings.from_config(config) if config.get("search") else None
except ValueError as err:
    sys.exit(f"config error: {err}")
SEARCH_SPACES = list(SEARCH.spaces) if SEARCH else []
SEARCH_POINTS = SEARCH.point_names if SEARCH else []

# Jobs call the `mixmerge` installed beside this Snakemake (e.g. .venv/bin), even when the venv
# is not activated; a conda env (--sdm conda) puts its own bin first when it is activated.
os.environ.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
# With --sdm conda, each env's post-deploy script (envs/install-mixmerge.sh) installs mixmerge
# from this checkout (editable). Not PYTHONPATH: Snakemake unsets it in conda jobs.
os.environ.setdefault("MIXMERGE_SRC", str(Path(workflow.basedir).resolve()))
if TINY:  # the tiny profile never needs the network: fail fast instead of trying the hub
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def _effective_config_path():
    """The merged config (config files + --config overrides) as the CLI verbs read it.

    Written beside Snakemake's own state only when it changes; it is not a rule input, so
    editing one stage's settings reruns only the rules whose `params` hold those settings.
    """
    path = Path(".snakemake/mixmerge") / f"{RUN}.config.yaml"
    text = yaml.safe_dump(dict(config), sort_keys=True)
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        # a temp name of its own: another snakemake (a dry run beside a run) may write it too
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    return str(path)


CONFIG = _effective_config_path()
# GPU jobs start through this: on one box it gives each job its own CUDA_VISIBLE_DEVICES
# (a no-op on CPU-only machines and under SLURM, which assigns devices itself).
PIN_GPUS = f"bash {workflow.basedir}/workflow/profiles/default/pin-gpus.sh"


def fixtures():
    """The tiny profile's generated model and data, when the profile is on."""
    return [f"{R}/fixtures"] if TINY else []


def model_dir(model_id):
    return f"{R}/models/{model_id}"


def group_pairs(group):
    return [f"{R}/data/{d}.jsonl" for d in config["groups"][group]]


def candidate_ids(group):
    return [f"dpo/{group}/{c}" for c in CANDIDATES]


def selection_file(group):
    return f"{R}/selection/dpo/{group}.json"


def setting_inputs(setting):
    """What a merge of `setting` reads: the selections and every candidate they may name."""
    groups = MERGE_SETTINGS[setting]
    return {
        "selections": [selection_file(g) for g in groups],
        "models": [model_dir(m) for g in groups for m in candidate_ids(g)],
    }


def merge_variants():
    """(method, variant) pairs of the robustness sweeps on the static setting."""
    variants = []
    for method in MERGE_SWEEPS.get("seed", {}).get("methods", []):
        variants += [(method, seed_variant(s)) for s in MERGE_SWEEPS["seed"]["values"]]
    for method in MERGE_SWEEPS.get("density", {}).get("methods", []):
        variants += [(method, density_variant(d)) for d in MERGE_SWEEPS["density"]["values"]]
    return variants


def evaluated_model_ids():
    """Every model the workflow scores: base, sweep candidates, continual stages, merges."""
    ids = ["base"]
    ids += [m for g in GROUPS for m in candidate_ids(g)]
    ids += mix_ids()
    ids += [f"continual/stage{k}" for k in range(1, len(CONTINUAL) + 1)]
    ids += [f"merge/{s}/{m}" for s in MERGE_SETTINGS for m in MERGE_METHODS]
    ids += [f"merge/sweep/{m}/{v}" for m, v in merge_variants()]  # static setting, one variant each
    ids += searched_model_ids()
    return ids


def searched_model_ids():
    """The merges of the points each search space selected (search.smk)."""
    return [f"merge/searched/{s}/{p}" for s in SEARCH_SPACES for p in SEARCH_POINTS]


def score_files(model_id):
    return [f"{R}/scores/{model_id}/{b}.json" for b in BENCHMARKS]


def all_score_files():
    return [f for m in evaluated_model_ids() for f in score_files(m)]


def selection_files():
    return [selection_file(g) for g in GROUPS] + [f"{R}/selection/mix/{s}.json" for s in MIX_STRATEGIES]


def mix_sets(strategy=None):
    """The mixed preference sets (data/mix/<set>.jsonl): heuristic/<ratio> each, armorm, hummer."""
    sets = [f"heuristic/{v}" for v in HEURISTIC] if "heuristic" in MIX_STRATEGIES else []
    sets += [s for s in MIX_STRATEGIES if s != "heuristic"]
    return [m for m in sets if strategy is None or m.split("/")[0] == strategy]


def mix_ids(strategy=None):
    """Trained mixture models, mix/<set>/<candidate>: every set over the mixture sweep; the
    selection of a strategy picks among all of its models (for heuristic: ratio and candidate)."""
    return [f"mix/{m}/{c}" for m in mix_sets(strategy) for c in MIX_CANDIDATES]


def all_pairs():
    return [f"{R}/data/{d}.jsonl" for d in DATASETS]


def diagnostics_inputs(setting):
    """The recipe of the first configured method with a base model: its task vectors are analysed."""
    method = next(n for n, m in config["merge"]["methods"].items() if m["merge_method"] != "linear")
    return {"recipe": f"{R}/recipes/{setting}/{method}.yaml", **setting_inputs(setting)}


def get_final_outputs():
    return report_outputs()  # defined in report.smk; resolved when `rule all` is parsed


def regex_escape(text):
    import re

    return re.escape(text)


def launcher(gpus):
    """`mixmerge`, or `accelerate launch` over the job's GPUs when training needs several."""
    if int(gpus) <= 1:
        return "mixmerge"
    accel = TRAIN_SETTINGS.accelerate_config
    config_file = f"--config_file {accel} " if accel else ""  # null: accelerate's own default
    return f"accelerate launch {config_file}--num_processes {int(gpus)} -m mixmerge.cli"


def eval_gpus():
    """GPUs of one evaluate_model job: the largest vLLM tensor_parallel_size, else 1."""
    ev = config["evaluate"]
    gens = [ev.get("generation", {})] + [(b or {}).get("generation", {}) for b in ev["benchmarks"].values()]
    if not any(g.get("backend") == "vllm" for g in gens):
        return 1
    return max(int(g.get("tensor_parallel_size", 1)) for g in gens)
