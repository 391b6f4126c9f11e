# Data-mixture baselines: a mixed preference set per strategy (and per heuristic ratio), DPO
# models trained on each over the mixture sweep (by default the group models' beta x lr grid),
# and the best model of each strategy kept by the same selection criterion as the groups.


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
        directory(model_dir("mix/{mix}/{candidate}")),
    log:
        f"{LOGS}/train/mix/{{mix}}/{{candidate}}.log",
    params:
        pin=PIN_GPUS,
        config=CONFIG,
        train=TRAIN,
        beta=lambda wc: MIX_CANDIDATES[wc.candidate][0],
        lr=lambda wc: MIX_CANDIDATES[wc.candidate][1],
        launcher=lambda wc, resources: launcher(resources.gpu),
    wildcard_constraints:
        mix=r"heuristic/[^/]+|armorm|hummer",
        candidate="|".join(map(regex_escape, MIX_CANDIDATES)),
    conda:
        "../../envs/train.yaml"
    resources:
        gpu=TRAIN_SETTINGS.gpus,
    shell:
        "{params.pin} {resources.gpu} {params.launcher} train --config {params.config} --model {input.base} --data {input.pairs} "
        "--beta {params.beta} --lr {params.lr} --out {output} > {log} 2>&1"


rule select_mix:
    input:
        scores=lambda wc: [f for m in mix_ids(wc.strategy) for f in score_files(m)],
        models=lambda wc: [model_dir(m) for m in mix_ids(wc.strategy)],
    output:
        f"{R}/selection/mix/{{strategy}}.json",
    log:
        f"{LOGS}/mixtures/{{strategy}}.select.log",
    params:
        scores=f"{R}/scores",
        models=f"{R}/models",
        candidates=lambda wc: mix_ids(wc.strategy),
        criterion=TRAIN_SETTINGS.selection,
    wildcard_constraints:
        strategy="heuristic|armorm|hummer",
    conda:
        "../../envs/report.yaml"
    shell:
        "mixmerge select --scores {params.scores} --candidates {params.candidates} "
        "--criterion '{params.criterion}' --models {params.models} --out {output} > {log} 2>&1"
