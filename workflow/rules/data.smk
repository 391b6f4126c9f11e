# Data stage: the tiny profile's fixtures and base model, then every dataset to preference pairs.


rule tiny_fixtures:
    output:
        directory(f"{R}/fixtures"),
    log:
        f"{LOGS}/data/tiny_fixtures.log",
    params:
        config=CONFIG,
        tiny=config.get("tiny", {}),
    conda:
        "../../envs/train.yaml"
    shell:
        "mixmerge tiny --config {params.config} --out {output} > {log} 2>&1"


rule base_model:
    input:
        fixtures(),
    output:
        directory(model_dir("base")),
    log:
        f"{LOGS}/data/base_model.log",
    params:
        config=CONFIG,
        base=config["base_model"],
    conda:
        "../../envs/train.yaml"
    shell:
        "mixmerge base --config {params.config} --out {output} > {log} 2>&1"


rule dataset_pairs:
    input:
        fixtures(),
    output:
        pairs=f"{R}/data/{{dataset}}.jsonl",
        stats=f"{R}/data/{{dataset}}.stats.json",
    log:
        f"{LOGS}/data/{{dataset}}.log",
    params:
        config=CONFIG,
        dataset=lambda wc: config["datasets"][wc.dataset],
        cleaning=config.get("data", {}),
    wildcard_constraints:
        dataset="|".join(DATASETS),
    conda:
        "../../envs/train.yaml"
    shell:
        "mixmerge data --config {params.config} --dataset {wildcards.dataset} --out {output.pairs} > {log} 2>&1"
