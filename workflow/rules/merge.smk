# Merge stage: a recipe per configured method over the group models, then the streaming merge.


rule merge_recipe:
    input:
        base=model_dir("base"),
        models=group_models(),
    output:
        f"{R}/recipes/static/{{method}}.yaml",
    log:
        f"{LOGS}/merge/static/{{method}}.recipe.log",
    params:
        config=CONFIG,
        method=lambda wc: config["merge"]["methods"][wc.method],
    wildcard_constraints:
        method="|".join(MERGE_METHODS),
    conda:
        "../../envs/merge.yaml"
    shell:
        "mixmerge recipe --config {params.config} --method {wildcards.method} "
        "--base {input.base} --models {input.models} --out {output} > {log} 2>&1"


rule merge_models:
    input:
        recipe=f"{R}/recipes/static/{{method}}.yaml",
        models=group_models(),
    output:
        directory(model_dir("merge/static/{method}")),
    log:
        f"{LOGS}/merge/static/{{method}}.log",
    params:
        device=config["merge"].get("device", "cpu"),
        seed=config.get("seed", 0),
    wildcard_constraints:
        method="|".join(MERGE_METHODS),
    conda:
        "../../envs/merge.yaml"
    shell:
        "mixmerge merge {input.recipe} {output} --device {params.device} --seed {params.seed} > {log} 2>&1"
