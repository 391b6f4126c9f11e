# Train stage: one DPO model per annotation group, from the base model.


rule train_group:
    input:
        base=model_dir("base"),
        pairs=lambda wc: [f"{R}/data/{d}.jsonl" for d in config["groups"][wc.group]],
    output:
        directory(model_dir("dpo/{group}")),
    log:
        f"{LOGS}/train/{{group}}.log",
    params:
        config=CONFIG,
        train=config["train"],
    wildcard_constraints:
        group="|".join(GROUPS),
    conda:
        "../../envs/train.yaml"
    resources:
        gpu=1,
    shell:
        "mixmerge train --config {params.config} --model {input.base} --data {input.pairs} --out {output} > {log} 2>&1"
