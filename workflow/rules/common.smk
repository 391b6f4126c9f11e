# Config validation and the input functions every stage shares.
import os
import sys
from pathlib import Path

import yaml

from mixmerge.config import ConfigError, validate

try:
    validate(config)
except ConfigError as err:
    sys.exit(str(err))  # one line naming the key, before any job is scheduled

RUN = config["run"]
R = f"results/{RUN}"
LOGS = f"{R}/logs"
GROUPS = list(config["groups"])
DATASETS = [name for names in config["groups"].values() for name in names]
MERGE_METHODS = list(config["merge"]["methods"])
BENCHMARKS = list(config["evaluate"]["benchmarks"])
TINY = config.get("tiny", {}).get("enabled", False)

# Jobs call the `mixmerge` installed beside this Snakemake (e.g. .venv/bin), even when the venv
# is not activated; a conda env (--sdm conda) puts its own bin first when it is activated.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
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
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return str(path)


CONFIG = _effective_config_path()


def fixtures():
    """The tiny profile's generated model and data, when the profile is on."""
    return [f"{R}/fixtures"] if TINY else []


def model_dir(model_id):
    return f"{R}/models/{model_id}"


def group_models():
    return [model_dir(f"dpo/{g}") for g in GROUPS]


def static_model_ids():
    return ["base", *[f"dpo/{g}" for g in GROUPS], *[f"merge/static/{m}" for m in MERGE_METHODS]]


def get_final_outputs():
    outputs = [f"{R}/tables/{setting}.md" for setting in config.get("report", {}).get("settings", ["static"])]
    outputs += [f"{R}/tables/{setting}.csv" for setting in config.get("report", {}).get("settings", ["static"])]
    return outputs
