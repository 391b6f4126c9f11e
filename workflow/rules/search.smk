# Search stage (config `search:`): the held-out items, one Optuna study per space (resumable:
# its study.db is not an output, so a killed job's rerun continues it), and the merges of the
# points each study selects, evaluated on the test items like every other model.
# Uses from common.smk: SEARCH (the typed search: block), SEARCH_SPACES, SEARCH_POINTS.


rule search_dev_items:
    input:
        data=fixtures(),
    output:
        f"{R}/search/dev/manifest.json",
    log:
        f"{LOGS}/search/dev_items.log",
    params:
        config=CONFIG,
        search=config.get("search"),
        benchmarks=config["evaluate"]["benchmarks"],
        out=lambda wc, output: os.path.dirname(output[0]),
    conda:
        "../../envs/eval.yaml"
    shell:
        "mixmerge search dev-items --config {params.config} --out {params.out} > {log} 2>&1"


rule search_space:
    input:
        unpack(lambda wc: setting_inputs(SEARCH.setting)),
        base=model_dir("base"),
        dev=f"{R}/search/dev/manifest.json",
    output:
        front=f"{R}/search/{{space}}/front.json",
        recipes=[f"{R}/recipes/searched/{{space}}/{p}.yaml" for p in SEARCH_POINTS],
    log:
        f"{LOGS}/search/{{space}}.log",
    params:
        pin=PIN_GPUS,
        config=CONFIG,
        space=lambda wc: config["search"]["spaces"][wc.space],
        # editing these reruns the job: more trials continue the study; another sampler, seed or
        # held-out set is refused by it (a study resumes only what it began)
        study={k: v for k, v in (config.get("search") or {}).items() if k != "spaces"},
        out=lambda wc, output: os.path.dirname(output.front),
        recipes=lambda wc, output: os.path.dirname(output.recipes[0]),
        dev=lambda wc, input: os.path.dirname(input.dev),
    wildcard_constraints:
        space="|".join(map(regex_escape, SEARCH_SPACES)) or "^$",
    conda:
        "../../envs/eval.yaml"
    resources:
        gpu=1,
    shell:
        "{params.pin} {resources.gpu} mixmerge search run --config {params.config} --space {wildcards.space} "
        "--dev {params.dev} --out {params.out} --recipes {params.recipes} >> {log} 2>&1"


rule merge_searched_models:
    input:
        unpack(lambda wc: setting_inputs(SEARCH.setting)),
        recipe=f"{R}/recipes/searched/{{space}}/{{point}}.yaml",
    output:
        directory(model_dir("merge/searched/{space}/{point}")),
    log:
        f"{LOGS}/merge/searched/{{space}}/{{point}}.log",
    params:
        pin=PIN_GPUS,
        device=config["merge"].get("device", "cpu"),
        seed=config.get("seed", 0),
    wildcard_constraints:
        space="|".join(map(regex_escape, SEARCH_SPACES)) or "^$",
    conda:
        "../../envs/merge.yaml"
    resources:
        gpu=1,
    shell:
        "{params.pin} {resources.gpu} mixmerge merge {input.recipe} {output} --device {params.device} --seed {params.seed} > {log} 2>&1"


rule report_search:
    input:
        fronts=[f"{R}/search/{s}/front.json" for s in SEARCH_SPACES],
    output:
        png=f"{R}/figures/search.png",
        pdf=f"{R}/figures/search.pdf",
    log:
        f"{LOGS}/report/search.log",
    conda:
        "../../envs/report.yaml"
    shell:
        "mixmerge report search {input.fronts} --out {output.png} > {log} 2>&1"
