# Config validation and the input functions every stage shares.
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
