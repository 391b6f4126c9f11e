# mixmerge: mix data or merge models? The 3H benchmark of Yang et al. (2025) as one workflow.
# This file is the table of contents; each stage lives in workflow/rules/<stage>.smk.
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


# The tiny default, unless --configfile names another: a paper config then REPLACES it instead of
# being merged over it (Snakemake's default merge would leak the tiny fixture paths into it).
# Found beside this file, so that --directory can point anywhere.
if not workflow.overwrite_configfiles:
    workflow.configfile(str(Path(workflow.basedir) / "config" / "config.yaml"))


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/mixtures.smk"
include: "workflow/rules/merge.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        get_final_outputs(),
    default_target: True
