# Data-mixture baselines: a mixed preference set per strategy (and per heuristic ratio), a DPO
# model trained on each with the default train recipe, and the best heuristic ratio kept.


rule mix_heuristic_pairs:
    input:
        pairs=all_pairs(),
    output:
        f"{R}/data/mix/heuristic/{{variant}}.jsonl",
    log:
        f"{LOGS}/mixtures/heuristic/{{variant}}.log",
    params:
        config=CONFIG,
        mixtures=MIXTURES.get("heuristic", {}),
        ratio=lambda wc: HEURISTIC[wc.variant],
    wildcard_constraints:
        variant="|".join(HEURISTIC) or "NONE",
    conda:
        "../../envs/judge.yaml"
    shell:
        "mixmerge mix --config {params.config} --strategy heuristic --ratio {params.ratio} "
        "--pairs {input.pairs} --out {output} > {log} 2>&1"


rule mix_scored_pairs:
    input:
        pairs=all_pairs(),
        base=model_dir("base"),
        data=fixtures(),
    output:
        f"{R}/data/mix/{{strategy}}.jsonl",
    log:
        f"{LOGS}/mixtures/{{strategy}}.log",
    params:
        pin=PIN_GPUS,
        config=CONFIG,
        mixtures=lambda wc: MIXTURES.get(wc.strategy, {}),
        cache=f"{R}/cache/mix",  # outside every output: reruns never rescore or relabel
    wildcard_constraints:
        strategy="armorm|hummer",
    conda:
        "../../envs/judge.yaml"
    resources:
        gpu=1,
    shell:
        "{params.pin} {resources.gpu} mixmerge mix --config {params.config} --strategy {wildcards.strategy} --policy {input.base} "
        "--pairs {input.pairs} --cache-dir {params.cache} --out {output} > {log} 2>&1"


rule train_mix:
    input:
        base=model_dir("base"),
        pairs=f"{R}/data/mix/{{mix}}.jsonl",
    output:
        directory(model_dir("mix/{mix}")),
    log:
        f"{LOGS}/train/mix/{{mix}}.log",
    params:
        pin=PIN_GPUS,
        config=CONFIG,
        train=TRAIN,
        launcher=lambda wc, resources: launcher(resources.gpu),
    wildcard_constraints:
        mix=r"heuristic/[^/]+|armorm|hummer",
    conda:
        "../../envs/train.yaml"
    resources:
        gpu=TRAIN.get("gpus", 1),
    shell:
        "{params.pin} {resources.gpu} {params.launcher} train --config {params.config} --model {input.base} --data {input.pairs} "
        "--out {output} > {log} 2>&1"


rule select_heuristic:
    input:
        scores=lambda wc: [f for v in HEURISTIC for f in score_files(f"mix/heuristic/{v}")],
    output:
        f"{R}/selection/mix/heuristic.json",
    log:
        f"{LOGS}/mixtures/heuristic.select.log",
    params:
        scores=f"{R}/scores",
        candidates=[f"mix/heuristic/{v}" for v in HEURISTIC],
        criterion=TRAIN.get("selection", "AVG"),
    conda:
        "../../envs/report.yaml"
    shell:
        "mixmerge select --scores {params.scores} --candidates {params.candidates} "
        "--criterion '{params.criterion}' --out {output} > {log} 2>&1"
