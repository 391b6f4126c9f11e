# Merge stage: a recipe per (setting, method) over the selected group models, the streaming
# merge, and the seed / density robustness sweeps on the static setting (models/merge/sweep/).
from mixmerge.merge.from_config import vocab_warnings

# Recipes whose (already existing) models' vocabularies differ, said before any merge starts.
try:
    for _line in vocab_warnings(config):
        print(f"warning: {_line}", file=sys.stderr)
except ValueError as err:
    sys.exit(f"config error: {err}")


rule merge_recipe:
    input:
        unpack(lambda wc: setting_inputs(wc.setting)),
        base=model_dir("base"),
    output:
        f"{R}/recipes/{{setting}}/{{method}}.yaml",
    log:
        f"{LOGS}/merge/{{setting}}/{{method}}.recipe.log",
    params:
        config=CONFIG,
        method=lambda wc: config["merge"]["methods"][wc.method],
        groups=lambda wc: MERGE_SETTINGS[wc.setting],
    wildcard_constraints:
        setting="|".join(MERGE_SETTINGS),
        method="|".join(MERGE_METHODS),
    conda:
        "../../envs/merge.yaml"
    shell:
        "mixmerge recipe --config {params.config} --setting {wildcards.setting} "
        "--method {wildcards.method} --out {output} > {log} 2>&1"


rule merge_sweep_recipe:
    input:
        unpack(lambda wc: setting_inputs("static")),
        base=model_dir("base"),
    output:
        f"{R}/recipes/sweep/{{method}}/{{variant}}.yaml",
    log:
        f"{LOGS}/merge/sweep/{{method}}/{{variant}}.recipe.log",
    params:
        config=CONFIG,
        method=lambda wc: config["merge"]["methods"][wc.method],
    wildcard_constraints:
        method="|".join(MERGE_METHODS),
        variant=r"seed\d+|density[0-9.e-]+",
    conda:
        "../../envs/merge.yaml"
    shell:
        "mixmerge recipe --config {params.config} --setting static --method {wildcards.method} "
        "--variant {wildcards.variant} --out {output} > {log} 2>&1"


rule merge_models:
    input:
        unpack(lambda wc: setting_inputs(wc.setting)),
        recipe=f"{R}/recipes/{{setting}}/{{method}}.yaml",
    output:
        directory(model_dir("merge/{setting}/{method}")),
    log:
        f"{LOGS}/merge/{{setting}}/{{method}}.log",
    params:
        pin=PIN_GPUS,
        device=config["merge"].get("device", "cpu"),
        seed=config.get("seed", 0),
    wildcard_constraints:
        setting="|".join(MERGE_SETTINGS),
        method="|".join(MERGE_METHODS),
    conda:
        "../../envs/merge.yaml"
    resources:
        gpu=1,
    shell:
        "{params.pin} {resources.gpu} mixmerge merge {input.recipe} {output} --device {params.device} --seed {params.seed} > {log} 2>&1"


rule merge_sweep_models:
    input:
        unpack(lambda wc: setting_inputs("static")),
        recipe=f"{R}/recipes/sweep/{{method}}/{{variant}}.yaml",
    output:
        directory(model_dir("merge/sweep/{method}/{variant}")),
    log:
        f"{LOGS}/merge/sweep/{{method}}/{{variant}}.log",
    params:
        pin=PIN_GPUS,
        device=config["merge"].get("device", "cpu"),
        seed=lambda wc: wc.variant[4:] if wc.variant.startswith("seed") else config.get("seed", 0),
    wildcard_constraints:
        method="|".join(MERGE_METHODS),
        variant=r"seed\d+|density[0-9.e-]+",
    conda:
        "../../envs/merge.yaml"
    resources:
        gpu=1,
    shell:
        "{params.pin} {resources.gpu} mixmerge merge {input.recipe} {output} --device {params.device} --seed {params.seed} > {log} 2>&1"
