# Train stage: every sweep candidate per annotation group, the best kept by the selection
# criterion, and the continual stages (each trained from the previous one).


rule train_candidate:
    input:
        base=model_dir("base"),
        pairs=lambda wc: group_pairs(wc.group),
    output:
        directory(model_dir("dpo/{group}/{candidate}")),
    log:
        f"{LOGS}/train/{{group}}/{{candidate}}.log",
    params:
        pin=PIN_GPUS,
        config=CONFIG,
        train=TRAIN,
        beta=lambda wc: CANDIDATES[wc.candidate][0],
        lr=lambda wc: CANDIDATES[wc.candidate][1],
        launcher=lambda wc, resources: launcher(resources.gpu),
    wildcard_constraints:
        group="|".join(GROUPS),
        candidate="|".join(map(regex_escape, CANDIDATES)),
    conda:
        "../../envs/train.yaml"
    resources:
        gpu=TRAIN_SETTINGS.gpus,
    shell:
        "{params.pin} {resources.gpu} {params.launcher} train --config {params.config} --model {input.base} --data {input.pairs} "
        "--beta {params.beta} --lr {params.lr} --out {output} > {log} 2>&1"


rule select_candidate:
    input:
        # one candidate is the pick: it is not evaluated only to be chosen (the report still
        # evaluates it for the tables)
        scores=lambda wc: [
            f for m in candidate_ids(wc.group) for f in score_files(m)
        ] if len(candidate_ids(wc.group)) > 1 else [],
        models=lambda wc: [model_dir(m) for m in candidate_ids(wc.group)],
    output:
        f"{R}/selection/dpo/{{group}}.json",
    log:
        f"{LOGS}/train/{{group}}.select.log",
    params:
        scores=f"{R}/scores",
        models=f"{R}/models",
        candidates=lambda wc: candidate_ids(wc.group),
        criterion=TRAIN_SETTINGS.selection,
    wildcard_constraints:
        group="|".join(GROUPS),
    conda:
        "../../envs/report.yaml"
    shell:
        "mixmerge select --scores {params.scores} --candidates {params.candidates} "
        "--criterion '{params.criterion}' --models {params.models} --out {output} > {log} 2>&1"


rule train_continual_stage:
    input:
        start=lambda wc: model_dir("base" if int(wc.k) == 1 else f"continual/stage{int(wc.k) - 1}"),
        pairs=lambda wc: group_pairs(CONTINUAL[int(wc.k) - 1]),
    output:
        directory(model_dir("continual/stage{k}")),
    log:
        f"{LOGS}/train/continual/stage{{k}}.log",
    params:
        pin=PIN_GPUS,
        config=CONFIG,
        train=TRAIN,
        stage=lambda wc: CONTINUAL[int(wc.k) - 1],
        launcher=lambda wc, resources: launcher(resources.gpu),
    wildcard_constraints:
        k=r"\d+",
    conda:
        "../../envs/train.yaml"
    resources:
        gpu=TRAIN_SETTINGS.gpus,
    shell:
        "{params.pin} {resources.gpu} {params.launcher} train --config {params.config} --model {input.start} --data {input.pairs} "
        "--out {output} > {log} 2>&1"
