# Evaluate stage: every model on every configured benchmark, in one job per model so the model
# (and the local judge) is loaded once; one score file per benchmark.


rule evaluate_model:
    input:
        model=lambda wc: model_dir(wc.model),
        data=fixtures(),
    output:
        [f"{R}/scores/{{model}}/{b}.json" for b in BENCHMARKS],
    log:
        f"{LOGS}/evaluate/{{model}}.log",
    params:
        pin=PIN_GPUS,
        config=CONFIG,
        evaluate=config["evaluate"],
        benchmarks=",".join(BENCHMARKS),
        scores=lambda wc: f"{R}/scores/{wc.model}",
    wildcard_constraints:
        model=r"base|dpo/[^/]+/[^/]+|continual/stage\d+|mix/(heuristic/)?[^/]+/[^/]+|merge/(static|continual)/[^/]+|merge/sweep/[^/]+/[^/]+|merge/searched/[^/]+/[^/]+",
    conda:
        "../../envs/eval.yaml"
    resources:
        gpu=eval_gpus(),
    shell:
        "{params.pin} {resources.gpu} mixmerge evaluate --config {params.config} --model {input.model} "
        "--benchmarks {params.benchmarks} --out {params.scores} > {log} 2>&1"
