# Evaluate stage: every model on every configured benchmark, one score file each.


rule evaluate_benchmark:
    input:
        model=lambda wc: model_dir(wc.model),
        data=fixtures(),
    output:
        f"{R}/scores/{{model}}/{{benchmark}}.json",
    log:
        f"{LOGS}/evaluate/{{model}}/{{benchmark}}.log",
    params:
        config=CONFIG,
        benchmark=lambda wc: config["evaluate"]["benchmarks"][wc.benchmark],
        generation=config["evaluate"].get("generation", {}),
        judge=config["evaluate"].get("judge", {}),
    wildcard_constraints:
        model="base|dpo/[^/]+|merge/static/[^/]+",
        benchmark="|".join(BENCHMARKS),
    conda:
        "../../envs/eval.yaml"
    resources:
        gpu=1,
    shell:
        "mixmerge evaluate --config {params.config} --model {input.model} "
        "--benchmarks {wildcards.benchmark} --out $(dirname {output}) > {log} 2>&1"
